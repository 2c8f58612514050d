"""Data-fit losses in observation space, per sample: ``loss(pred, y) -> (B,)``.

``pred`` is ``A(G(.))`` and ``y`` the observation, both ``(B, ...)``. Built-ins: ``"mse"``,
``"l1"``, ``"lpips"`` (SqueezeNet LPIPS, weights read offline) and ``"dfeat"`` (L1 between a
discriminator's features). :func:`build_loss` turns a name, a weighted dict such as
``{"mse": 1, "lpips": 0.1}`` or a callable into one per-sample loss; build it once and reuse it.

Example::

    >>> import torch
    >>> loss = build_loss({"mse": 1.0, "l1": 0.5})
    >>> loss(torch.zeros(2, 3), torch.ones(2, 3))
    tensor([1.5000, 1.5000])
"""
from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["mse", "l1", "build_loss", "lpips_network", "squeezenet_weights", "LPIPSLoss", "DFeatLoss",
           "SQUEEZENET_SHA256"]

SQUEEZENET_SHA256 = "435cedb387e95bc8291893f61a3a64f0345b8c23a05139aceef43947efb3d52d"
_SQUEEZE_FILE = "squeezenet1_1-features.pth"


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: ``(B, ...) x (B, ...) -> (B,)``."""
    return (pred - y).square().flatten(1).mean(1)


def l1(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per sample: ``(B, ...) x (B, ...) -> (B,)``."""
    return (pred - y).abs().flatten(1).mean(1)


# ----------------------------------------------------------------------------- LPIPS
def _candidates(path=None):
    if path is not None:
        return [Path(path)]
    found = []
    if os.environ.get("GANRESTORE_SQUEEZENET"):
        found.append(Path(os.environ["GANRESTORE_SQUEEZENET"]))
    try:  # the model registry's cache folder (never fetched from here: no download)
        from priors.registry import cache_dir  # noqa: WPS433

        found.append(cache_dir() / "lpips" / _SQUEEZE_FILE)
    except ImportError:  # pragma: no cover - registry absent
        pass
    here = Path(__file__).resolve().parents[1]
    found += [here.parent / "shared" / "weights" / _SQUEEZE_FILE, here / "shared" / "weights" / _SQUEEZE_FILE]
    return found


def squeezenet_weights(path=None, check_sha256: bool = True) -> dict:
    """The ImageNet SqueezeNet 1.1 ``features`` state dict for LPIPS, read from a local file.

    Looks at ``path``, ``$GANRESTORE_SQUEEZENET``, the model registry's cache
    (``<cache_dir>/lpips/squeezenet1_1-features.pth``), then
    ``../shared/weights/squeezenet1_1-features.pth``; never downloads. Raises
    ``FileNotFoundError`` listing where it looked, ``ValueError`` on a checksum mismatch.
    """
    tried = _candidates(path)
    for p in tried:
        if p.is_file():
            if check_sha256 and p.name == _SQUEEZE_FILE:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                if digest != SQUEEZENET_SHA256:
                    raise ValueError(f"{p}: sha256 {digest}, expected {SQUEEZENET_SHA256}")
            state = torch.load(p, map_location="cpu", weights_only=True)
            return {k[len("features."):] if k.startswith("features.") else k: v for k, v in state.items()
                    if not k.startswith("classifier.")}
    raise FileNotFoundError(f"LPIPS SqueezeNet weights not found (no download is attempted); looked in: "
                            f"{[str(p) for p in tried]}")


@functools.lru_cache(maxsize=4)
def lpips_network(device: str = "cpu", path=None) -> nn.Module:
    """The frozen ``lpips.LPIPS(net='squeeze')`` network, built once per device and cached.

    Its linear heads ship with the ``lpips`` package; the backbone comes from
    :func:`squeezenet_weights`. Inputs are images in ``[-1, 1]``.
    """
    import lpips  # noqa: WPS433 - heavy import only when needed

    with warnings.catch_warnings():  # torchvision's deprecation notes about `pretrained`
        warnings.simplefilter("ignore")
        net = lpips.LPIPS(net="squeeze", pretrained=True, pnet_rand=True, verbose=False)
    state = squeezenet_weights(path)
    slices = [range(0, 2), range(2, 5), range(5, 8), range(8, 10), range(10, 11), range(11, 12), range(12, 13)]
    where = {i: n for n, r in enumerate(slices, 1) for i in r}
    mapped = {f"slice{where[int(k.split('.')[0])]}.{k}": v for k, v in state.items()}
    missing, unexpected = net.net.load_state_dict(mapped, strict=False)
    if missing or unexpected:
        raise ValueError(f"SqueezeNet weights do not fit LPIPS: missing {missing}, unexpected {unexpected}")
    net.eval().requires_grad_(False)
    return net.to(device)


def _as_rgb_image(x: torch.Tensor, what: str, min_size: int = 32) -> torch.Tensor:
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{what} needs image-shaped observations (B, 1 or 3, H, W), got {tuple(x.shape)}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if min(x.shape[-2:]) < min_size:
        scale = -(-min_size // min(x.shape[-2:]))
        x = F.interpolate(x, scale_factor=scale, mode="nearest")
    return x


class LPIPSLoss(nn.Module):
    """LPIPS per sample between image-shaped observations in ``[0, 1]`` (grey ones are repeated
    to RGB, small ones upsampled to 32 pixels): ``(B, C, H, W) x (B, C, H, W) -> (B,)``."""

    def __init__(self, net: Optional[nn.Module] = None, device="cpu"):
        super().__init__()
        self.net = net if net is not None else lpips_network(str(device))

    def forward(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = _as_rgb_image(pred, "lpips"), _as_rgb_image(y, "lpips")
        return self.net(a * 2 - 1, b * 2 - 1).flatten(1).mean(1)


class DFeatLoss(nn.Module):
    """L1 between discriminator features of the observations (DGP's feature loss).

    Observations are brought to the discriminator's input (channels repeated, bilinear resize).
    """

    def __init__(self, discriminator: nn.Module, channels: int, resolution: int):
        super().__init__()
        if discriminator is None:
            raise ValueError("loss 'dfeat' needs a prior with a discriminator; this prior has none")
        self.disc, self.channels, self.resolution = discriminator, channels, resolution

    def _prep(self, x):
        if x.dim() != 4:
            raise ValueError(f"dfeat needs image-shaped observations (B, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            x = x.mean(1, keepdim=True).expand(-1, self.channels, -1, -1)
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        return x

    def forward(self, pred, y):
        fp, fy = self.disc.features(self._prep(pred)), self.disc.features(self._prep(y))
        return sum((a - b).abs().flatten(1).mean(1) for a, b in zip(fp, fy))


class _Weighted(nn.Module):
    def __init__(self, terms):
        super().__init__()
        self.terms = terms  # list of (weight, callable)

    def forward(self, pred, y):
        return sum(w * f(pred, y) for w, f in self.terms)


def _one(name: str, prior=None, lpips_net=None, device="cpu") -> Callable:
    if name == "mse":
        return mse
    if name == "l1":
        return l1
    if name == "lpips":
        return LPIPSLoss(lpips_net, device)
    if name == "dfeat":
        return DFeatLoss(getattr(prior, "discriminator", None), getattr(prior, "channels", 3),
                         getattr(prior, "resolution", 64))
    raise ValueError(f"unknown loss {name!r}; expected one of ['mse', 'l1', 'lpips', 'dfeat'], a dict of "
                     f"weights over them, or a callable (pred, y) -> (B,)")


def build_loss(spec=None, prior=None, lpips_net=None, device="cpu") -> Callable:
    """A per-sample loss ``(pred, y) -> (B,)`` from ``spec``.

    ``spec``: ``None`` (``"mse"``), a name, a dict ``{name: weight}``, or a callable (returned as
    is; it must return one value per sample). ``prior`` supplies the discriminator for
    ``"dfeat"``; ``lpips_net`` a prebuilt LPIPS network.
    """
    if spec is None:
        return mse
    if callable(spec):
        return spec
    if isinstance(spec, str):
        return _one(spec, prior, lpips_net, device)
    if isinstance(spec, dict):
        if not spec:
            raise ValueError("a loss dict needs at least one {name: weight} entry")
        return _Weighted([(float(w), _one(k, prior, lpips_net, device)) for k, w in spec.items()])
    raise TypeError(f"loss must be None, a name, a dict of weights or a callable, got {type(spec).__name__}")
