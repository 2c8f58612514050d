"""BigGAN in the BigGAN-PyTorch checkpoint layout (family ``"biggan-pytorch"``).

The layout of ajbrock/BigGAN-PyTorch ``G_ema.pth`` / ``D.pth`` state dicts, as the deep generative
prior (DGP) release uses them (128x128 or 256x256 ImageNet, shared class embedding, hierarchical
latent). The architecture (resolution, widths, latent and embedding sizes, hierarchical ``z``,
attention placement, number of classes) is inferred from the tensor names and shapes; only the
epsilons, which no tensor records, are arguments (defaults: the DGP release's ``BN_eps=1e-5``,
``SN_eps=1e-6``).

Generator: ``y = class_vector @ shared.weight``; with a hierarchical latent, ``z`` is split in
``len(blocks) + 1`` chunks, the first feeding ``linear`` and chunk ``i + 1`` joining ``y`` to
condition block ``i``. ``blocks[i]`` is one upsampling residual block plus the self-attention
that follows it, if any. Spectral norm is evaluated as BigGAN-PyTorch does in eval mode (one
power-iteration step from the stored ``u0``, no buffer update).

Discriminator (``D.pth`` beside ``G_ema.pth``, or ``D_<suffix>.pth`` beside ``G_ema_<suffix>.pth``):
``features(x)`` returns, as the DGP release's ``Discriminator.forward`` does, the output of every
block and attention layer and then the sum-pooled final features; ``forward(x, c)`` the projection
score (unconditional part only when ``c`` is None).

Example::

    >>> import torch
    >>> from priors import biggan_pytorch
    >>> G = biggan_pytorch.tiny()
    >>> x = G(G.sample_latents(2, seed=0), torch.tensor([0, 3]))
    >>> x.shape, G.discriminator(x, torch.tensor([0, 3])).shape
    (torch.Size([2, 3, 32, 32]), torch.Size([2]))
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import Discriminator, Generator, freeze
from .biggan_layers import (SNConv2d, SNLinear, attention, check_state_dict, class_vector, randomize_,
                            zeros_module)

__all__ = ["BigGANPyTorch", "BigGANPyTorchD", "ENTRIES", "from_checkpoint", "tiny",
           "infer_generator_arch", "infer_discriminator_arch"]

ENTRIES: list = []  # the DGP release's weights sit on Google Drive / Baidu: no stable URL to register

_DGP_EXTRA = re.compile(r"^blocks\.\d+\.0\.in[12]\.(weight|bias)$")  # DGP's unused instance norms


def _power_conv(i, o, k, eps, bias=True):
    return SNConv2d(i, o, k, padding=k // 2, bias=bias, style="power", eps=eps)


class CCBN(nn.Module):
    """Conditional batch norm: stored statistics, gain ``1 + gain(y)`` and ``bias(y)``."""

    def __init__(self, channels: int, input_size: int, eps: float, sn_eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.gain = SNLinear(input_size, channels, bias=False, style="power", eps=sn_eps)
        self.bias = SNLinear(input_size, channels, bias=False, style="power", eps=sn_eps)
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = (x - self.stored_mean[:, None, None]) * torch.rsqrt(self.stored_var[:, None, None] + self.eps)
        return h * (1 + self.gain(y))[..., None, None] + self.bias(y)[..., None, None]


class BN(nn.Module):
    """Unconditional batch norm with stored statistics (the generator's output layer)."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("stored_mean", torch.zeros(channels))
        self.register_buffer("stored_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gain * torch.rsqrt(self.stored_var + self.eps)
        return (x - self.stored_mean[:, None, None]) * scale[:, None, None] + self.bias[:, None, None]


class GBlock(nn.Module):
    """Upsampling residual block ``(B, in, H, W), y -> (B, out, 2H, 2W)``."""

    def __init__(self, cin: int, cout: int, y_dim: int, bn_eps: float, sn_eps: float) -> None:
        super().__init__()
        self.conv1, self.conv2 = _power_conv(cin, cout, 3, sn_eps), _power_conv(cout, cout, 3, sn_eps)
        self.conv_sc = _power_conv(cin, cout, 1, sn_eps)
        self.bn1, self.bn2 = CCBN(cin, y_dim, bn_eps, sn_eps), CCBN(cout, y_dim, bn_eps, sn_eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.conv_sc(F.interpolate(x, scale_factor=2))


class Attention(nn.Module):
    """SAGAN self-attention with BigGAN-PyTorch's tensor names; ignores ``y``."""

    def __init__(self, ch: int, sn_eps: float) -> None:
        super().__init__()
        self.theta, self.phi = _power_conv(ch, ch // 8, 1, sn_eps, False), _power_conv(ch, ch // 8, 1, sn_eps, False)
        self.g, self.o = _power_conv(ch, ch // 2, 1, sn_eps, False), _power_conv(ch // 2, ch, 1, sn_eps, False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        return attention(x, self.theta, self.phi, self.g, self.o, self.gamma)


def _count(state: dict, pattern: str) -> int:
    n = 0
    while pattern.format(n) in state:
        n += 1
    return n


def _need(state: dict, key: str, what: str) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"{what}: missing tensor {key!r}; not a BigGAN-PyTorch state dict "
                         f"(shared class embedding, spectral-norm layers)")
    return state[key]


def infer_generator_arch(state: dict, what: str = "generator") -> dict:
    """Architecture of a BigGAN-PyTorch generator state dict, from tensor names and shapes."""
    shared = _need(state, "shared.weight", what)
    n = _count(state, "blocks.{}.0.conv1.weight")
    if n == 0:
        raise ValueError(f"{what}: no generator blocks (expected 'blocks.0.0.conv1.weight')")
    conv1 = [state[f"blocks.{i}.0.conv1.weight"] for i in range(n)]
    lin = _need(state, "linear.weight", what)
    y_dim = _need(state, "blocks.0.0.bn1.gain.weight", what).shape[1]
    chunk = y_dim - shared.shape[1]
    area = lin.shape[0] // conv1[0].shape[1]
    bottom = math.isqrt(area)
    if bottom * bottom * conv1[0].shape[1] != lin.shape[0]:
        raise ValueError(f"{what}: 'linear.weight' {tuple(lin.shape)} is not (in_channels*w*w, dim_z) "
                         f"for the first block's {conv1[0].shape[1]} channels")
    if chunk and chunk != lin.shape[1]:
        raise ValueError(f"{what}: hierarchical latent chunk {chunk} (from bn1.gain) differs from "
                         f"'linear.weight' input {lin.shape[1]}")
    return dict(in_channels=[w.shape[1] for w in conv1], out_channels=[w.shape[0] for w in conv1],
                attention=[f"blocks.{i}.1.theta.weight" in state for i in range(n)],
                bottom_width=bottom, n_classes=shared.shape[0], shared_dim=shared.shape[1],
                hier=chunk > 0, dim_z=chunk * (n + 1) if chunk else lin.shape[1])


class BigGANPyTorch(Generator):
    """A BigGAN-PyTorch generator (see the module docstring); ``latent_shape = (dim_z,)``,
    ``c`` required: integer ids ``(B,)`` or a class vector ``(B, n_classes)``."""

    needs_latent_in_tail = True

    def __init__(self, arch: dict, bn_eps: float = 1e-5, sn_eps: float = 1e-6) -> None:
        super().__init__()
        self.arch = dict(arch)
        n, chans = len(arch["in_channels"]), arch["out_channels"]
        self.hier, self.bottom_width = bool(arch["hier"]), int(arch["bottom_width"])
        self.chunk = arch["dim_z"] // (n + 1) if self.hier else arch["dim_z"]
        self.latent_shape, self.n_classes, self.channels = (int(arch["dim_z"]),), int(arch["n_classes"]), 3
        self.resolution, self.output_range = self.bottom_width * 2 ** n, (-1.0, 1.0)
        y_dim = arch["shared_dim"] + (self.chunk if self.hier else 0)
        self.shared = zeros_module(nn.Embedding, self.n_classes, arch["shared_dim"])
        self.linear = SNLinear(self.chunk, arch["in_channels"][0] * self.bottom_width ** 2, style="power", eps=sn_eps)
        blocks = []
        for cin, cout, attn in zip(arch["in_channels"], chans, arch["attention"]):
            block = [GBlock(cin, cout, y_dim, bn_eps, sn_eps)]
            blocks.append(nn.ModuleList(block + ([Attention(cout, sn_eps)] if attn else [])))
        self.blocks = nn.ModuleList(blocks)
        self.output_layer = nn.Sequential(BN(chans[-1], bn_eps), nn.ReLU(), _power_conv(chans[-1], 3, 3, sn_eps))

    def context(self, z, c=None):
        if z is None or c is None:
            raise ValueError("BigGAN needs both z and the class c (every block is conditioned on them)")
        y = class_vector(c, self.n_classes, z.shape[0], z.dtype, z.device) @ self.shared.weight
        if not self.hier:
            return {"z0": z, "ys": [y] * len(self.blocks)}
        zs = torch.split(z, self.chunk, dim=1)
        return {"z0": zs[0], "ys": [torch.cat([y, zi], dim=1) for zi in zs[1:]]}

    def stem(self, z, ctx):
        h = self.linear(ctx["z0"])
        return h.reshape(h.shape[0], -1, self.bottom_width, self.bottom_width)

    def run_block(self, i, h, ctx):
        for layer in self.blocks[i]:
            h = layer(h, ctx["ys"][i])
        return h

    def output(self, h, ctx):
        return torch.tanh(self.output_layer(h))

    def block_parameters(self, upto: int) -> list:
        """DGP's parameter groups: the stem (class embedding, ``linear``) with the first block,
        ``blocks[:upto]``, and the output layer once every block is included."""
        stem = [*self.shared.parameters(), *self.linear.parameters()] if upto > 0 else []
        tail = list(self.output_layer.parameters()) if upto >= len(self.blocks) else []
        return stem + super().block_parameters(upto) + tail


class DBlock(nn.Module):
    """Discriminator residual block (``preactivation`` for all but the first); optional 2x2 average
    pooling: ``(B, in, H, W) -> (B, out, H/s, W/s)``."""

    def __init__(self, cin, hidden, cout, learnable_sc, downsample, preactivation, sn_eps) -> None:
        super().__init__()
        self.downsample, self.preactivation = downsample, preactivation
        self.conv1, self.conv2 = _power_conv(cin, hidden, 3, sn_eps), _power_conv(hidden, cout, 3, sn_eps)
        self.conv_sc = _power_conv(cin, cout, 1, sn_eps) if learnable_sc else None

    def _shortcut(self, x):
        if self.preactivation and self.conv_sc is not None:
            x = self.conv_sc(x)
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if not self.preactivation and self.conv_sc is not None:
            x = self.conv_sc(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x) if self.preactivation else x)
        h = self.conv2(F.relu(h))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self._shortcut(x)


def infer_discriminator_arch(state: dict, what: str = "discriminator") -> dict:
    """Architecture of a BigGAN-PyTorch discriminator state dict. A block downsamples when it has a
    shortcut convolution and is not the last one (true of every architecture BigGAN-PyTorch defines)."""
    n = _count(state, "blocks.{}.0.conv1.weight")
    if n == 0:
        raise ValueError(f"{what}: no discriminator blocks (expected 'blocks.0.0.conv1.weight')")
    c1 = [state[f"blocks.{i}.0.conv1.weight"] for i in range(n)]
    c2 = [_need(state, f"blocks.{i}.0.conv2.weight", what) for i in range(n)]
    sc = [f"blocks.{i}.0.conv_sc.weight" in state for i in range(n)]
    embed = _need(state, "embed.weight", what)
    return dict(in_channels=[w.shape[1] for w in c1], hidden=[w.shape[0] for w in c1],
                out_channels=[w.shape[0] for w in c2], learnable_sc=sc,
                downsample=[s and i < n - 1 for i, s in enumerate(sc)],
                attention=[f"blocks.{i}.1.theta.weight" in state for i in range(n)],
                n_classes=embed.shape[0], output_dim=_need(state, "linear.weight", what).shape[0])


class BigGANPyTorchD(Discriminator):
    """BigGAN-PyTorch projection discriminator taking ``(B, 3, H, W)`` images in [0, 1]."""

    def __init__(self, arch: dict, sn_eps: float = 1e-6) -> None:
        super().__init__()
        self.arch, self.n_classes = dict(arch), int(arch["n_classes"])
        blocks = []
        for i, (cin, hid, cout) in enumerate(zip(arch["in_channels"], arch["hidden"], arch["out_channels"])):
            block = [DBlock(cin, hid, cout, arch["learnable_sc"][i], arch["downsample"][i], i > 0, sn_eps)]
            blocks.append(nn.ModuleList(block + ([Attention(cout, sn_eps)] if arch["attention"][i] else [])))
        self.blocks = nn.ModuleList(blocks)
        c_last = arch["out_channels"][-1]
        self.linear = SNLinear(c_last, int(arch["output_dim"]), style="power", eps=sn_eps)
        # an SNEmbedding's (n_classes, C) weight normalised like a linear layer's
        self.embed = SNLinear(c_last, self.n_classes, bias=False, style="power", eps=sn_eps)

    def features(self, x: torch.Tensor, c=None) -> list:
        """Each block's and attention layer's output, then the sum-pooled ``(B, C)`` features."""
        h, feats = self.to_native(x), []
        for blocklist in self.blocks:
            for layer in blocklist:
                h = layer(h)
                feats.append(h)
        feats.append(torch.sum(F.relu(h), dim=(2, 3)))
        return feats

    def forward(self, x: torch.Tensor, c=None) -> torch.Tensor:
        """``(B,)`` scores: ``linear(pooled)`` plus, given ``c``, the class projection."""
        pooled = self.features(x)[-1]
        out = self.linear(pooled)[:, 0]
        if c is None:
            return out
        emb = class_vector(c, self.n_classes, x.shape[0], pooled.dtype, pooled.device) @ self.embed.sn_weight()
        return out + torch.sum(emb * pooled, dim=1)


def _load(net: nn.Module, state: dict, what: str) -> None:
    expected = {k: v.shape for k, v in net.state_dict().items()}
    check_state_dict(state, expected, what)
    net.load_state_dict(state)


def _discriminator_path(path: Path) -> Path:
    stem = path.stem
    name = ("D" + stem[len("G_ema"):]) if stem.startswith("G_ema") else \
        ("D" + stem[1:]) if stem.startswith("G") else "D"
    return path.with_name(name + path.suffix)


def from_checkpoint(path, device=None, discriminator="auto", bn_eps: float = 1e-5,
                    sn_eps: float = 1e-6) -> BigGANPyTorch:
    """Load a BigGAN-PyTorch ``G_ema.pth`` (with ``D.pth`` beside it) as a frozen generator.

    Args:
        path: the generator state dict (``G_ema.pth``, ``G_ema_<suffix>.pth`` or ``G.pth``).
        discriminator: ``"auto"`` (load ``D.pth`` / ``D_<suffix>.pth`` beside it when present),
            a path to the discriminator state dict, or None/False for none.
        bn_eps, sn_eps: batch-norm and spectral-norm epsilons (not stored in the checkpoint).
    Raises ``ValueError`` naming the first missing, unexpected or wrongly shaped tensor.
    """
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not _DGP_EXTRA.match(k)}
    G = BigGANPyTorch(infer_generator_arch(state, f"BigGAN-PyTorch generator {path}"), bn_eps, sn_eps)
    _load(G, state, f"BigGAN-PyTorch generator {path}")
    d_path = _discriminator_path(path) if discriminator == "auto" else discriminator
    if d_path and (discriminator != "auto" or Path(d_path).exists()):
        d_state = torch.load(d_path, map_location="cpu", weights_only=True)
        what = f"BigGAN-PyTorch discriminator {d_path}"
        D = BigGANPyTorchD(infer_discriminator_arch(d_state, what), sn_eps)
        _load(D, d_state, what)
        G.discriminator = freeze(D)
    G = freeze(G)
    return G.to(device) if device is not None else G


TINY_G = dict(in_channels=[16, 16, 8], out_channels=[16, 8, 8], attention=[False, True, False],
              bottom_width=4, n_classes=10, shared_dim=8, hier=True, dim_z=16)
TINY_D = dict(in_channels=[3, 4, 8, 16], hidden=[4, 8, 16, 16], out_channels=[4, 8, 16, 16],
              learnable_sc=[True, True, True, False], downsample=[True, True, True, False],
              attention=[False, True, False, False], n_classes=10, output_dim=1)


def tiny(seed: int = 0) -> BigGANPyTorch:
    """A frozen random-weight 32x32 BigGAN (hierarchical z of 16, 10 classes) with its discriminator."""
    G = randomize_(BigGANPyTorch(TINY_G), seed)
    G.discriminator = freeze(randomize_(BigGANPyTorchD(TINY_D), seed + 1))
    return freeze(G)
