"""PGGAN checkpoint layouts: architecture inference, expected keys and shapes, validation.

Three PyTorch conversions of NVIDIA's PGGAN generators share one architecture (see
:mod:`priors.pggan`) and differ only in tensor names:

``"mganprior"`` (genforce: mGANprior, InterFaceGAN, HiGAN; the canonical names used here)::

    lod                                   ()                 level of detail (0 = fully grown)
    layer{j}.conv.weight                  (C_out, C_in, k, k) k = 4 for layer0 (latent dense), else 3
    layer{j}.weight                       (3, 3, C_in, C_out) instead, for even j > 0 with fused_scale
    layer{j}.wscale.bias                  (C_out,)
    output{i}.conv.weight / .wscale.bias  (C_img, C_i, 1, 1) / (C_img,)  ToRGB of every resolution

``"gandissect"`` (CSAILVision/gandissect, davidbau/ganseeing ``proggan.py``): ``layer{j+1}.conv.weight``,
``layer{j+1}.wscale.b``, and only the last ToRGB as ``output_{R}x{R}.conv.weight`` / ``.wscale.b``.

``"gandissect-old"`` (its older names): ``features.{j}.conv.weight``, ``features.{j}.wscale.b``,
``output.conv.weight``, ``output.wscale.b``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import torch

__all__ = ["PGGANConfig", "LAYOUTS", "detect_layout", "to_canonical", "expected_shapes",
           "check_state_dict", "infer_config", "conv0_key"]

LAYOUTS = ("mganprior", "gandissect", "gandissect-old")


@dataclass(frozen=True)
class PGGANConfig:
    """PGGAN generator hyperparameters.

    Attributes:
        latent_size: length of ``z`` (512 in the published models).
        widths: feature maps per resolution ``4, 8, ..., resolution``.
        fused_scale: upsample with a transposed convolution instead of nearest + conv.
        image_channels: output channels (3 for RGB).
    """

    latent_size: int
    widths: Tuple[int, ...]
    fused_scale: bool = False
    image_channels: int = 3

    @property
    def resolution(self) -> int:
        return 4 * 2 ** (len(self.widths) - 1)

    @classmethod
    def official(cls, resolution: int, latent_size: int = 512, fused_scale: bool = False,
                 image_channels: int = 3, fmaps_base: int = 16384, fmaps_max: int = 512) -> "PGGANConfig":
        """The official widths ``min(fmaps_base // res, fmaps_max)`` (as in the mGANprior port)."""
        n = int(round(math.log2(resolution))) - 1 if resolution >= 4 else 0
        if n < 1 or 4 * 2 ** (n - 1) != resolution:
            raise ValueError(f"PGGAN resolution must be a power of two >= 4, got {resolution}")
        widths = tuple(min(fmaps_base // (4 * 2 ** i), fmaps_max) for i in range(n))
        return cls(int(latent_size), widths, bool(fused_scale), int(image_channels))

    def describe(self) -> str:
        return (f"PGGAN {self.resolution}x{self.resolution}, latent {self.latent_size}, widths "
                f"{list(self.widths)}, fused_scale={self.fused_scale}, {self.image_channels} channels")


def conv0_key(i: int, fused: bool) -> str:
    """Canonical key of the weight of the first convolution of resolution block ``i``."""
    return f"layer{2 * i}.weight" if fused and i > 0 else f"layer{2 * i}.conv.weight"


def detect_layout(sd: Mapping[str, torch.Tensor]) -> str:
    """Which of :data:`LAYOUTS` names ``sd``'s tensors; ``ValueError`` when none does."""
    if "layer0.conv.weight" in sd:
        return "mganprior"
    if "layer1.conv.weight" in sd and "layer1.wscale.b" in sd:
        return "gandissect"
    if "features.0.conv.weight" in sd:
        return "gandissect-old"
    raise ValueError(f"not a PGGAN generator state dict: expected 'layer0.conv.weight' (mGANprior/"
                     f"InterFaceGAN layout), 'layer1.wscale.b' (gandissect) or 'features.0.conv.weight'; "
                     f"keys start {list(sd)[:6]}")


def _native_key(layout: str, key: str, n: int) -> Optional[str]:
    """Canonical key -> the key ``layout`` stores it under (``None``: not stored there)."""
    if layout == "mganprior":
        return key
    m = re.fullmatch(r"(layer|output)(\d+)\.(.*)", key)
    if m is None:  # "lod"
        return None
    kind, j, rest = m.group(1), int(m.group(2)), m.group(3).replace("wscale.bias", "wscale.b")
    if kind == "output":
        if j != n - 1:
            return None
        res = 4 * 2 ** (n - 1)
        return f"output_{res}x{res}.{rest}" if layout == "gandissect" else f"output.{rest}"
    return f"layer{j + 1}.{rest}" if layout == "gandissect" else f"features.{j}.{rest}"


def to_canonical(sd: Mapping[str, torch.Tensor], layout: str) -> Dict[str, torch.Tensor]:
    """Rename ``sd`` from ``layout`` to the canonical (mGANprior) names; unknown keys are kept."""
    if layout == "mganprior":
        return dict(sd)
    out: Dict[str, torch.Tensor] = {}
    n_old = len([k for k in sd if re.fullmatch(r"features\.\d+\.conv\.weight", k)]) // 2
    for key, v in sd.items():
        new = key.replace("wscale.b", "wscale.bias") if key.endswith("wscale.b") else key
        m = re.fullmatch(r"(layer|features)\.?(\d+)\.(.*)", new)
        if m and ((m.group(1) == "layer") == (layout == "gandissect")):
            j = int(m.group(2)) - (layout == "gandissect")
            new = f"layer{j}.{m.group(3)}"
        elif (m := re.fullmatch(r"output_(\d+)x\1\.(.*)", new)) and layout == "gandissect":
            new = f"output{int(round(math.log2(int(m.group(1))))) - 2}.{m.group(2)}"
        elif new.startswith("output.") and layout == "gandissect-old":
            new = f"output{n_old - 1}.{new[len('output.'):]}"
        out[new] = v
    return out


def expected_shapes(cfg: PGGANConfig, layout: str = "mganprior") -> Dict[str, Tuple[int, ...]]:
    """Key -> tensor shape that a ``layout`` checkpoint of ``cfg`` stores, in storage order
    (``lod``, when the layout has it, is optional when loading)."""
    shapes: Dict[str, Tuple[int, ...]] = {"lod": ()}
    prev = cfg.latent_size
    for i, c in enumerate(cfg.widths):
        if i == 0:
            shapes["layer0.conv.weight"] = (c, prev, 4, 4)
        else:
            shapes[conv0_key(i, cfg.fused_scale)] = (3, 3, prev, c) if cfg.fused_scale else (c, prev, 3, 3)
        shapes[f"layer{2 * i}.wscale.bias"] = (c,)
        shapes[f"layer{2 * i + 1}.conv.weight"] = (c, c, 3, 3)
        shapes[f"layer{2 * i + 1}.wscale.bias"] = (c,)
        shapes[f"output{i}.conv.weight"] = (cfg.image_channels, c, 1, 1)
        shapes[f"output{i}.wscale.bias"] = (cfg.image_channels,)
        prev = c
    n = len(cfg.widths)
    native = ((_native_key(layout, k, n), s) for k, s in shapes.items())
    return {k: s for k, s in native if k is not None}


def check_state_dict(sd: Mapping[str, torch.Tensor], cfg: PGGANConfig, layout: str = "mganprior",
                     what: str = "checkpoint") -> None:
    """Raise ``ValueError`` naming the first key of ``sd`` (in its own ``layout``'s names) that is
    missing, has the wrong shape, or is unexpected for ``cfg``."""
    expected = expected_shapes(cfg, layout)
    head = f"{what}: does not match {cfg.describe()} ({layout} layout): first mismatch:"
    for key, shape in expected.items():
        if key not in sd:
            if key != "lod":
                raise ValueError(f"{head} missing key {key!r} (expected shape {shape})")
        elif tuple(sd[key].shape) != shape:
            raise ValueError(f"{head} {key!r} has shape {tuple(sd[key].shape)}, expected {shape}")
    for key in sd:
        if key not in expected:
            raise ValueError(f"{head} unexpected key {key!r} (shape {tuple(sd[key].shape)})")


def infer_config(sd: Mapping[str, torch.Tensor], what: str = "checkpoint") -> PGGANConfig:
    """Read a :class:`PGGANConfig` from the names and shapes of a canonical-layout state dict."""
    first = sd.get("layer0.conv.weight")
    if first is None or first.dim() != 4 or tuple(first.shape[2:]) != (4, 4):
        found = tuple(first.shape) if first is not None else "absent"
        raise ValueError(f"{what}: the latent layer weight must have shape (C, latent, 4, 4), found {found}")
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"layer(\d+)\.", k))}
    n = len(layers) // 2
    if n < 1 or layers != set(range(2 * n)):
        raise ValueError(f"{what}: PGGAN layers must be layer0..layer{2 * n - 1} (two per resolution), "
                         f"found {sorted(layers)}")
    widths = []
    for j in range(1, 2 * n, 2):
        w = sd.get(f"layer{j}.conv.weight")
        if w is None or w.dim() != 4:
            raise ValueError(f"{what}: first mismatch: missing 3x3 convolution weight of layer{j}")
        widths.append(int(w.shape[0]))
    rgb = sd.get(f"output{n - 1}.conv.weight")
    if rgb is None or rgb.dim() != 4:
        raise ValueError(f"{what}: first mismatch: missing the final ToRGB weight (output{n - 1})")
    return PGGANConfig(latent_size=int(first.shape[1]), widths=tuple(widths),
                       fused_scale=conv0_key(1, True) in sd, image_channels=int(rgb.shape[0]))
