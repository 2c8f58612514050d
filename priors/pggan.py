"""PGGAN generators (Karras et al., ICLR 2018) from PyTorch conversions of NVIDIA's weights.

The layout of the mGANprior release (genforce/mganprior; also InterFaceGAN and HiGAN) is the
reference: a flat state dict (``lod``, ``layer{j}.conv.weight``, ``layer{j}.wscale.bias``,
``output{i}.*``); the gandissect/ganseeing conversion (``layer{j+1}.wscale.b``, ``output_RxR.*``)
loads too. :mod:`priors.pggan_layouts` lists the names and shapes.

Architecture, as in mGANprior's ``models/pggan_generator_network.py``: two layers per resolution
``4 * 2^i``. ``layer0`` is the latent "dense" layer, stored as a ``(C_0, latent, 4, 4)``
convolution (padding 3) on the ``(B, latent, 1, 1)`` latent; every other layer is a 3x3
convolution, the first of each resolution preceded by nearest 2x upsampling (or, with
``fused_scale``, a transposed convolution with weight ``(3, 3, C_in, C_out)``). Each layer is
``pixel norm -> [upsample] -> conv -> * wscale + bias -> LeakyReLU(0.2)`` with equalized
learning rate ``wscale = gain / sqrt(fan_in)`` (gain ``sqrt(2)``; 1 and no activation for the
1x1 ToRGB). The pixel norm of ``layer0`` normalizes the latent itself, so the scale of ``z`` does
not matter (mGANprior's rescaling of z to norm ``sqrt(latent)`` is a no-op here). The output is
linear, no tanh: native range ``[-1, 1]``, not clamped. No labels and no truncation in these
releases, and no discriminator: the conversions keep only the generator ``Gs``.

Blocks are one per resolution (``4x4`` first), so split ``k`` is the feature map after
resolution ``2^(k+1)``, before the next layer's pixel norm: mGANprior's ``composing_layer``
``2k`` (its published settings 4, 6 and 8 are ``k`` = 2, 3, 4). ToRGB is the ``output`` hook.
Resolution, latent size, widths, image channels and ``fused_scale`` are read from tensor shapes.

Example::

    >>> from priors import pggan
    >>> G = pggan.tiny()
    >>> z = G.sample_latents(2, seed=0)
    >>> G(z).shape, [tuple(G.features(z, k).shape[1:]) for k in range(len(G.blocks) + 1)]
    (torch.Size([2, 3, 16, 16]), [(32, 1, 1), (32, 4, 4), (16, 8, 8), (8, 16, 16)])
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._weights import build_empty, select_state_dict, torch_load
from .base import Generator, freeze
from .pggan_layouts import (PGGANConfig, check_state_dict, conv0_key, detect_layout, expected_shapes,
                            infer_config, to_canonical)

__all__ = ["PGGANConfig", "PGGANGenerator", "from_checkpoint", "from_state_dict", "infer_config",
           "expected_shapes", "check_state_dict", "tiny", "ENTRIES"]

_LICENCE = ("CC BY-NC 4.0 (NVIDIA's progressive_growing_of_gans weights); conversion code: MIT "
            "(genforce, resp. MIT CSAIL gandissect)")
_EXPECT = ("no published full sha256; the loader checks every key and tensor shape against the "
           "expected architecture")
_GANDISSECT = "http://gandissect.csail.mit.edu/models/"


def _entry(name, resolution, filename, url, description, note, **kwargs) -> dict:
    return dict(name=name, family="pggan", resolution=resolution, licence=_LICENCE, description=description,
                files=[dict(filename=filename, url=url, sha256=None, size=None)],
                sha256_note=f"{_EXPECT}. {note}",
                kwargs=dict(expect=dict(resolution=resolution, latent_size=512, fused_scale=False), **kwargs))


def _lsun(scene: str, digest: str) -> dict:
    filename = f"proggan_{scene}-{digest}.pth"
    return _entry(
        f"pggan-{scene}-256", 256, filename, _GANDISSECT + filename,
        f"PGGAN, LSUN {scene} 256x256, latent 512 (the model mGANprior uses as pggan_{scene}); "
        "MIT CSAIL gandissect PyTorch conversion; generator only, no discriminator",
        f"mGANprior publishes only NVIDIA's TensorFlow pickle (karras2018iclr-lsun-{scene}-256x256.pkl, "
        f"converted locally to pggan_{scene}256_generator.pth, which also loads); this is the same "
        f"network as converted by gandissect/ganseeing, whose file name carries the first 8 hex digits "
        f"of its sha256 ({digest}, torch.hub convention), checked on load", sha256_prefix=digest)


ENTRIES = [
    _entry("pggan-celebahq-1024", 1024, "pggan_celebahq.pth",
           "https://www.dropbox.com/s/t74z87pk3cf8ny7/pggan_celebahq.pth?dl=1",
           "PGGAN, CelebA-HQ faces 1024x1024, latent 512; genforce PyTorch conversion in the "
           "mGANprior/InterFaceGAN layout; generator only, no discriminator",
           "URL: InterFaceGAN's release of the converted weights (the file mGANprior writes as "
           "pggan_celebahq1024_generator.pth from the TensorFlow pickle)"),
    _lsun("bedroom", "d8a89ff1"),
    _lsun("churchoutdoor", "7e701dd5"),
]


# ---------------------------------------------------------------------------- layers
def _pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Normalize each pixel's feature vector: ``x / sqrt(mean_c(x^2) + 1e-8)``, over dim 1."""
    return x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling ``(B, C, H, W) -> (B, C, 2H, 2W)``."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


class EqualizedLayer(nn.Module):
    """``pixel norm -> [upsample] -> conv -> * wscale + bias -> [LeakyReLU(0.2)]``.

    ``kind``: ``"dense"`` (4x4 kernel, padding 3: ``(B, latent, 1, 1) -> (B, C, 4, 4)``),
    ``"conv"`` (3x3, same size), ``"up"`` (nearest 2x then 3x3), ``"up_fused"`` (transposed
    convolution, weight ``(3, 3, C_in, C_out)``), ``"rgb"`` (1x1, gain 1, linear).
    """

    _KERNEL = {"dense": 4, "conv": 3, "up": 3, "up_fused": 3, "rgb": 1}

    def __init__(self, kind: str, c_in: int, c_out: int) -> None:
        super().__init__()
        k = self._KERNEL[kind]
        self.kind = kind
        self.padding = {"dense": 3, "rgb": 0}.get(kind, 1)
        gain = 1.0 if kind == "rgb" else math.sqrt(2.0)
        self.scale = gain / math.sqrt(c_in * k * k)
        shape = (k, k, c_in, c_out) if kind == "up_fused" else (c_out, c_in, k, k)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(c_out))

    def _fused_up(self, x: torch.Tensor) -> torch.Tensor:
        kernel = F.pad(self.weight * self.scale, (0, 0, 0, 0, 1, 1, 1, 1))
        kernel = kernel[1:, 1:] + kernel[:-1, 1:] + kernel[1:, :-1] + kernel[:-1, :-1]
        x = F.conv_transpose2d(x, kernel.permute(2, 3, 0, 1), stride=2, padding=1)
        return x / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pixel_norm(x)
        if self.kind == "up_fused":
            x = self._fused_up(x)
        else:
            if self.kind == "up":
                x = _upsample2(x)
            x = F.conv2d(x, self.weight, padding=self.padding)
        x = x * self.scale + self.bias.view(1, -1, 1, 1)
        return x if self.kind == "rgb" else F.leaky_relu(x, 0.2)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, weight={tuple(self.weight.shape)}"


class PGGANBlock(nn.Module):
    """One resolution: ``(B, C_in, H, W) -> (B, C, 2H, 2W)`` (``(B, latent, 1, 1) -> (B, C, 4, 4)``
    for the first block)."""

    def __init__(self, c_in: int, c_out: int, first: bool, fused_scale: bool) -> None:
        super().__init__()
        kind = "dense" if first else ("up_fused" if fused_scale else "up")
        self.conv0 = EqualizedLayer(kind, c_in, c_out)
        self.conv1 = EqualizedLayer("conv", c_out, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv0(x))


# ---------------------------------------------------------------------------- generator
class PGGANGenerator(Generator):
    """A fully grown PGGAN generator: ``z (B, latent) -> (B, C, R, R)`` in ``[0, 1]``.

    ``blocks[i]`` produces resolution ``4 * 2^i``; ``to_rgb`` (the ``output`` hook) maps the last
    block's features to the native ``[-1, 1]`` range. No discriminator (none is released).
    """

    output_range = (-1.0, 1.0)
    layout = "mganprior"  # tensor naming of the checkpoint it was loaded from

    def __init__(self, cfg: PGGANConfig) -> None:
        super().__init__()
        self.config = cfg
        self.latent_shape = (cfg.latent_size,)
        self.resolution = cfg.resolution
        self.channels = cfg.image_channels
        ins = (cfg.latent_size,) + cfg.widths[:-1]
        self.blocks = nn.ModuleList(PGGANBlock(c_in, c, i == 0, cfg.fused_scale)
                                    for i, (c_in, c) in enumerate(zip(ins, cfg.widths)))
        self.to_rgb = EqualizedLayer("rgb", cfg.widths[-1], cfg.image_channels)

    def stem(self, z: torch.Tensor, ctx) -> torch.Tensor:
        """``(B, latent) -> (B, latent, 1, 1)`` (normalized by the first layer's pixel norm)."""
        return z.reshape(z.shape[0], -1, 1, 1)

    def output(self, h: torch.Tensor, ctx) -> torch.Tensor:
        return self.to_rgb(h)

    def block_parameters(self, upto: int) -> list:
        """Parameters of ``blocks[:upto]``, plus ToRGB once every block is included."""
        params = super().block_parameters(upto)
        return params + list(self.to_rgb.parameters()) if upto >= len(self.blocks) else params


def _rename(sd: Mapping[str, torch.Tensor], cfg: PGGANConfig) -> Dict[str, torch.Tensor]:
    """Canonical keys -> :class:`PGGANGenerator` keys (intermediate ToRGBs and ``lod`` dropped)."""
    n = len(cfg.widths)
    out: Dict[str, torch.Tensor] = {}
    for i in range(n):
        out[f"blocks.{i}.conv0.weight"] = sd[conv0_key(i, cfg.fused_scale)]
        out[f"blocks.{i}.conv0.bias"] = sd[f"layer{2 * i}.wscale.bias"]
        out[f"blocks.{i}.conv1.weight"] = sd[f"layer{2 * i + 1}.conv.weight"]
        out[f"blocks.{i}.conv1.bias"] = sd[f"layer{2 * i + 1}.wscale.bias"]
    out["to_rgb.weight"] = sd[f"output{n - 1}.conv.weight"]
    out["to_rgb.bias"] = sd[f"output{n - 1}.wscale.bias"]
    return out


def from_state_dict(sd: Mapping[str, torch.Tensor], expect: Optional[Mapping] = None,
                    what: str = "checkpoint") -> PGGANGenerator:
    """Build a frozen :class:`PGGANGenerator` from a PGGAN state dict (any of the layouts in
    :mod:`priors.pggan_layouts`; a ``{"state_dict": ...}`` wrapper is unwrapped).

    Args:
        sd: the state dict.
        expect: optional keyword arguments of :meth:`PGGANConfig.official`, e.g.
            ``dict(resolution=256, latent_size=512, fused_scale=False)``: the file must then match
            that architecture exactly (registry entries without a checksum use this).

    Raises:
        ValueError: naming the first missing, unexpected or wrongly shaped tensor.
    """
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    sd = select_state_dict(sd, what=what)
    layout = detect_layout(sd)
    if expect is not None:
        check_state_dict(sd, PGGANConfig.official(**expect), layout, what)
    canonical = to_canonical(sd, layout)
    cfg = infer_config(canonical, what)
    check_state_dict(sd, cfg, layout, what)
    if "lod" in sd and float(sd["lod"]) != 0.0:
        raise ValueError(f"{what}: lod={float(sd['lod'])}: saved while still growing; only fully "
                         f"grown generators (lod 0) are supported")
    G = build_empty(lambda: PGGANGenerator(cfg))
    G.load_state_dict(_rename(canonical, cfg), strict=True)
    G.layout = layout
    return freeze(G)


def _check_digest(path: Path, prefix: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if not h.hexdigest().startswith(prefix.lower()):
        raise ValueError(f"{path}: sha256 {h.hexdigest()} does not start with the published {prefix}; "
                         f"the file is corrupt or not the expected checkpoint: delete it and fetch again")


def from_checkpoint(path, device=None, expect: Optional[Mapping] = None,
                    sha256_prefix: Optional[str] = None) -> PGGANGenerator:
    """Load a PGGAN ``.pth`` (mGANprior/InterFaceGAN or gandissect layout) as a frozen generator.

    The architecture is read from the file (any resolution, latent size or widths); ``expect``
    additionally pins it (see :func:`from_state_dict`); ``sha256_prefix`` (hex) must begin the
    file's sha256 (torch.hub-style file names carry one). There is no discriminator.
    """
    path = Path(path)
    if sha256_prefix and path.is_file():
        _check_digest(path, sha256_prefix)
    G = from_state_dict(torch_load(path), expect=expect, what=str(path))
    return G.to(device) if device is not None else G


@torch.no_grad()
def tiny(seed: int = 0, fused_scale: bool = False) -> PGGANGenerator:
    """A random-weight 16x16 PGGAN (latent 32, widths 32/16/8) for fast CPU tests; weights
    ``N(0, 1)`` (equalized learning rate scales them), biases ``N(0, 0.1^2)``."""
    G = build_empty(lambda: PGGANGenerator(PGGANConfig(32, (32, 16, 8), fused_scale)))
    gen = torch.Generator().manual_seed(int(seed))
    for name, p in G.named_parameters():
        p.copy_(torch.randn(p.shape, generator=gen) * (1.0 if name.endswith("weight") else 0.1))
    return freeze(G)
