"""BigGAN-deep in the pytorch-pretrained-biggan checkpoint layout (family ``"biggan"``).

A checkpoint is a ``pytorch_model.bin`` state dict plus the ``config.json`` beside it (as
published for ``biggan-deep-128/256/512``); the architecture is built from that config. The
network is the one of pytorch-pretrained-biggan 0.1.1 (``model.py``), reimplemented here:

* ``cond = [z, embeddings(class_vector)]`` ``(B, 2*z_dim)`` feeds ``gen_z`` and every batch norm;
* ``blocks``: one per resolution (the generator blocks up to and including each upsampling one),
  the self-attention layer joining the block it follows;
* ``truncation`` ``t`` in ``(0, 1]`` does not rescale ``z``: it selects (and interpolates) the
  batch-norm statistics stored per truncation, exactly as the package does. ``G(z, c,
  truncation=t)`` overrides the default ``G.truncation`` for one call; ``sample_latents(n, seed,
  truncation=t)`` draws the package's truncated normal in ``[-2, 2]`` times ``t``.

Example::

    >>> import torch
    >>> from priors import biggan
    >>> G = biggan.tiny()
    >>> z = G.sample_latents(2, seed=0, truncation=0.5)
    >>> G(z, torch.tensor([1, 7]), truncation=0.5).shape
    torch.Size([2, 3, 32, 32])
"""
from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import Generator, freeze
from .biggan_layers import (SNConv2d, SNLinear, attention, check_state_dict, class_vector, randomize_,
                            zeros_module)

__all__ = ["BigGANDeep", "ENTRIES", "from_checkpoint", "tiny", "read_config"]

_URL = "https://s3.amazonaws.com/models.huggingface.co/biggan/biggan-deep-{res}-{what}"
_LICENCE = ("Apache-2.0 (pytorch-pretrained-BigGAN code and converted weights; weights converted "
            "from DeepMind's BigGAN-deep TF Hub modules)")
_SHA_NOTE = ("no published checksum, and the files could not be downloaded where this entry was "
             "written; loading checks every tensor name and shape against the architecture built "
             "from config.json instead")
ENTRIES = [
    dict(name=f"biggan-deep-{res}", family="biggan", resolution=res, licence=_LICENCE,
         description=f"BigGAN-deep {res}x{res}, ImageNet 1000 classes (pytorch-pretrained-biggan)",
         files=[dict(filename=f"biggan-deep-{res}-{what}", url=_URL.format(res=res, what=what),
                     sha256=None, size=None, sha256_note=_SHA_NOTE)
                for what in ("pytorch_model.bin", "config.json")],
         sha256_note=_SHA_NOTE, kwargs={})
    for res in (128, 256, 512)
]

_REQUIRED = ("output_dim", "z_dim", "channel_width", "num_classes", "layers",
             "attention_layer_position", "eps", "n_stats")


def read_config(path) -> dict:
    """Read a pytorch-pretrained-biggan ``config.json``; ``ValueError`` naming missing keys."""
    with open(path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    missing = [k for k in _REQUIRED if k not in cfg]
    if missing:
        raise ValueError(f"BigGAN config {path} lacks keys {missing} (needs {list(_REQUIRED)})")
    return cfg


def _bn_stats(means: torch.Tensor, variances: torch.Tensor, truncation: float):
    """The package's per-truncation statistics lookup (including its interpolation weights)."""
    step = 1.0 / (means.shape[-2] - 1)
    coef, start = math.modf(truncation / step)
    start = int(start)
    if coef != 0.0:
        return (means[..., start, :] * coef + means[..., start + 1, :] * (1 - coef),
                variances[..., start, :] * coef + variances[..., start + 1, :] * (1 - coef))
    return means[..., start, :], variances[..., start, :]


class CondBatchNorm(nn.Module):
    """Class- and latent-conditional batch norm with statistics per truncation value."""

    def __init__(self, channels: int, cond_dim: int, n_stats: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, channels))
        self.register_buffer("running_vars", torch.ones(n_stats, channels))
        self.scale = SNLinear(cond_dim, channels, bias=False, style="uv", eps=eps)
        self.offset = SNLinear(cond_dim, channels, bias=False, style="uv", eps=eps)

    def forward(self, x: torch.Tensor, truncation: float, cond: torch.Tensor) -> torch.Tensor:
        mean, var = _bn_stats(self.running_means, self.running_vars, truncation)
        weight = 1 + self.scale(cond)[..., None, None]
        bias = self.offset(cond)[..., None, None]
        return (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + self.eps) * weight + bias


class OutBatchNorm(nn.Module):
    """The unconditional batch norm before the RGB convolution (statistics per truncation)."""

    def __init__(self, channels: int, n_stats: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("running_means", torch.zeros(n_stats, channels))
        self.register_buffer("running_vars", torch.ones(n_stats, channels))
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, truncation: float) -> torch.Tensor:
        mean, var = _bn_stats(self.running_means, self.running_vars, truncation)
        scale = self.weight / torch.sqrt(var + self.eps)
        return (x - mean[:, None, None]) * scale[:, None, None] + self.bias[:, None, None]


class GenBlock(nn.Module):
    """Bottleneck residual block ``(B, in, H, W) -> (B, out, sH, sW)`` (``s`` 2 when upsampling)."""

    def __init__(self, in_size: int, out_size: int, cond_dim: int, up_sample: bool, n_stats: int,
                 eps: float) -> None:
        super().__init__()
        self.up_sample, self.drop_channels = up_sample, in_size != out_size
        mid = in_size // 4
        sizes = [(in_size, mid, 1), (mid, mid, 3), (mid, mid, 3), (mid, out_size, 1)]
        for i, (cin, cout, k) in enumerate(sizes):
            setattr(self, f"bn_{i}", CondBatchNorm(cin, cond_dim, n_stats, eps))
            setattr(self, f"conv_{i}", SNConv2d(cin, cout, k, padding=k // 2, style="uv", eps=eps))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, truncation: float) -> torch.Tensor:
        h = x
        for i in range(4):
            h = F.relu(getattr(self, f"bn_{i}")(h, truncation, cond))
            if i == 1 and self.up_sample:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = getattr(self, f"conv_{i}")(h)
        if self.drop_channels:
            x = x[:, : x.shape[1] // 2]
        if self.up_sample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return h + x


class SelfAttn(nn.Module):
    """SAGAN self-attention ``(B, C, H, W) -> (B, C, H, W)`` with the package's tensor names."""

    def __init__(self, ch: int, eps: float) -> None:
        super().__init__()
        conv = lambda i, o: SNConv2d(i, o, 1, bias=False, style="uv", eps=eps)  # noqa: E731
        self.snconv1x1_theta, self.snconv1x1_phi = conv(ch, ch // 8), conv(ch, ch // 8)
        self.snconv1x1_g, self.snconv1x1_o_conv = conv(ch, ch // 2), conv(ch // 2, ch)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return attention(x, self.snconv1x1_theta, self.snconv1x1_phi, self.snconv1x1_g,
                         self.snconv1x1_o_conv, self.gamma)


def _check_truncation(t) -> float:
    t = float(t)
    if not 0.0 < t <= 1.0:
        raise ValueError(f"truncation must be in (0, 1] (BigGAN-deep stores statistics for that range), got {t}")
    return t


class BigGANDeep(Generator):
    """BigGAN-deep built from a pytorch-pretrained-biggan config dict (see :func:`read_config`).

    ``latent_shape = (z_dim,)``; ``c`` is required: integer ids ``(B,)`` or a class vector
    ``(B, num_classes)`` (one-hot or soft). Output ``(B, 3, output_dim, output_dim)`` in [0, 1].
    """

    needs_latent_in_tail = True

    def __init__(self, config: dict, truncation: float = 1.0) -> None:
        super().__init__()
        self.config = dict(config)
        ch, z_dim, n_stats, eps = (int(config["channel_width"]), int(config["z_dim"]),
                                   int(config["n_stats"]), float(config["eps"]))
        self.latent_shape, self.channels, self.n_classes = (z_dim,), 3, int(config["num_classes"])
        self.output_range, self.truncation, self._call_truncation = (-1.0, 1.0), _check_truncation(truncation), None
        self.ch = ch
        self.embeddings = zeros_module(nn.Linear, self.n_classes, z_dim, bias=False)
        self.gen_z = SNLinear(2 * z_dim, 4 * 4 * 16 * ch, style="uv", eps=eps)
        self.blocks, self._ref_pos = self._build_blocks(config, 2 * z_dim, n_stats, eps)
        ups = sum(bool(layer[0]) for layer in config["layers"])
        self.resolution = 4 * 2 ** ups
        if self.resolution != int(config["output_dim"]):
            raise ValueError(f"config layers upsample 4x4 to {self.resolution}, "
                             f"but output_dim is {config['output_dim']}")
        self.bn = OutBatchNorm(ch, n_stats, eps)
        self.conv_to_rgb = SNConv2d(ch, ch, 3, padding=1, style="uv", eps=eps)

    def _build_blocks(self, config, cond_dim, n_stats, eps):
        """Group the flat layer list into resolution blocks; remember each layer's flat index."""
        ch, groups, current, pos = int(config["channel_width"]), [], [], {}
        flat = 0
        for i, (up, cin, cout) in enumerate(config["layers"]):
            if i == int(config["attention_layer_position"]):
                target = groups[-1] if (groups and not current) else current
                pos[flat] = (len(groups) - 1 if target is not current else len(groups), len(target))
                target.append(SelfAttn(ch * int(cin), eps))
                flat += 1
            pos[flat] = (len(groups), len(current))
            current.append(GenBlock(ch * int(cin), ch * int(cout), cond_dim, bool(up), n_stats, eps))
            flat += 1
            if up:
                groups.append(current)
                current = []
        if current:
            groups.append(current)
        return nn.ModuleList(nn.ModuleList(g) for g in groups), pos

    # ------------------------------------------------------------------ checkpoint names
    def reference_name(self, key: str) -> str:
        """Our state-dict key -> the pytorch-pretrained-biggan key."""
        if key.startswith("embeddings."):
            return key
        if key.startswith("blocks."):
            g, k, rest = key.split(".", 3)[1:]
            flat = next(j for j, p in self._ref_pos.items() if p == (int(g), int(k)))
            return f"generator.layers.{flat}.{rest}"
        return "generator." + key

    # ------------------------------------------------------------------ truncation
    @contextlib.contextmanager
    def _truncation_scope(self, truncation):
        previous = self._call_truncation
        self._call_truncation = None if truncation is None else _check_truncation(truncation)
        try:
            yield
        finally:
            self._call_truncation = previous

    def forward(self, z, c=None, truncation: Optional[float] = None):
        with self._truncation_scope(truncation):
            return super().forward(z, c)

    def features(self, z, k, c=None, truncation: Optional[float] = None):
        with self._truncation_scope(truncation):
            return super().features(z, k, c)

    def from_features(self, h, k, c=None, z=None, truncation: Optional[float] = None):
        with self._truncation_scope(truncation):
            return super().from_features(h, k, c, z)

    # ------------------------------------------------------------------ hooks
    def context(self, z, c=None):
        if z is None or c is None:
            raise ValueError("BigGAN-deep needs both z and the class c (every block is conditioned on them)")
        cvec = class_vector(c, self.n_classes, z.shape[0], z.dtype, z.device)
        cond = torch.cat((z, self.embeddings(cvec)), dim=1)
        t = self.truncation if self._call_truncation is None else self._call_truncation
        return {"cond": cond, "truncation": t}

    def stem(self, z, ctx):
        h = self.gen_z(ctx["cond"]).reshape(-1, 4, 4, 16 * self.ch)
        return h.permute(0, 3, 1, 2)

    def run_block(self, i, h, ctx):
        for layer in self.blocks[i]:
            h = layer(h, ctx["cond"], ctx["truncation"]) if isinstance(layer, GenBlock) else layer(h)
        return h

    def output(self, h, ctx):
        h = self.conv_to_rgb(F.relu(self.bn(h, ctx["truncation"])))
        return torch.tanh(h[:, :3])

    def block_parameters(self, upto: int) -> list:
        """The stem (class embedding, ``gen_z``) with the first block, ``blocks[:upto]``, and the
        output layer (``bn``, ``conv_to_rgb``) once every block is included."""
        stem = [*self.embeddings.parameters(), *self.gen_z.parameters()] if upto > 0 else []
        tail = [*self.bn.parameters(), *self.conv_to_rgb.parameters()] if upto >= len(self.blocks) else []
        return stem + super().block_parameters(upto) + tail

    # ------------------------------------------------------------------ latents
    def sample_latents(self, n: int, seed: Optional[int] = None, device=None, dtype=None,
                       truncation: Optional[float] = None) -> torch.Tensor:
        """``(n, z_dim)``: scipy ``truncnorm(-2, 2)`` draws times ``truncation`` (default
        ``self.truncation``), from a private ``numpy.random.RandomState(seed)``; for a given seed
        equal to pytorch-pretrained-biggan's ``truncated_noise_sample(n, z_dim, t, seed)``."""
        from scipy.stats import truncnorm

        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        t = self.truncation if truncation is None else _check_truncation(truncation)
        state = np.random.RandomState(None if seed is None else int(seed))
        values = truncnorm.rvs(-2, 2, size=(n, self.latent_shape[0]), random_state=state).astype(np.float32)
        z = torch.from_numpy(t * values)
        return z.to(device=device or self._param_device(), dtype=dtype or self._param_dtype())


def _config_path(path: Path, config) -> Path:
    if config is not None:
        config = Path(config)
        return config if config.is_absolute() or config.exists() else path.parent / config
    name = path.name
    if name.endswith("pytorch_model.bin"):
        return path.with_name(name[: -len("pytorch_model.bin")] + "config.json")
    return path.with_name("config.json")


def from_checkpoint(path, device=None, config=None, truncation: float = 1.0) -> BigGANDeep:
    """Load a pytorch-pretrained-biggan checkpoint as a frozen :class:`BigGANDeep`.

    Args:
        path: the ``pytorch_model.bin`` (or ``<name>-pytorch_model.bin``), or a folder holding
            ``pytorch_model.bin`` and ``config.json``.
        config: the config file; default ``config.json`` (or ``<name>-config.json``) beside it.
        truncation: default truncation of the returned generator, in ``(0, 1]``.
    Raises ``ValueError`` naming the first missing, unexpected or wrongly shaped tensor.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "pytorch_model.bin"
    cfg = read_config(_config_path(path, config))
    state = torch.load(path, map_location="cpu", weights_only=True)
    G = BigGANDeep(cfg, truncation=truncation)
    ours = G.state_dict()
    names = {G.reference_name(k): k for k in ours}
    check_state_dict(state, {ref: ours[k].shape for ref, k in names.items()}, f"BigGAN checkpoint {path}")
    G.load_state_dict({k: state[ref] for ref, k in names.items()})
    return freeze(G).to(device) if device is not None else freeze(G)


TINY_CONFIG = dict(output_dim=32, z_dim=16, class_embed_dim=16, channel_width=4, num_classes=10,
                   layers=[[False, 16, 16], [True, 16, 8], [False, 8, 4], [True, 4, 2], [False, 2, 2], [True, 2, 1]],
                   attention_layer_position=4, eps=1e-4, n_stats=51)


def tiny(seed: int = 0) -> BigGANDeep:
    """A frozen random-weight BigGAN-deep: z_dim 16, 10 classes, 32x32, attention at 16x16."""
    return freeze(randomize_(BigGANDeep(TINY_CONFIG), seed))
