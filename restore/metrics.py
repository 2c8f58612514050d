"""Image quality metrics, batched: ``metric(x, y) -> (B,)`` for images ``(B, C, H, W)`` in ``[0, 1]``;
``reduction="mean"`` gives one Python float (the batch mean; for one image, its value).

Example::

    >>> import torch
    >>> x = torch.full((2, 3, 8, 8), 0.5)
    >>> psnr(x, x + 0.1)
    tensor([20.0000, 20.0000])
    >>> round(psnr(x, x + 0.1, reduction="mean"), 4)
    20.0
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
from skimage.metrics import structural_similarity

from .losses import LPIPSLoss, lpips_network

__all__ = ["psnr", "ssim", "lpips", "REDUCTIONS"]

REDUCTIONS = ("none", "mean")


def _check(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{what} takes torch tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(f"{what} needs two images (B, C, H, W) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def _reduce(values: torch.Tensor, reduction: str) -> Union[torch.Tensor, float]:
    return float(values.double().mean()) if reduction == "mean" else values


def _check_reduction(reduction: str, what: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{what}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, *,
         reduction: str = "none") -> Union[torch.Tensor, float]:
    """Peak signal-to-noise ratio in dB per sample ``(B,)`` (``inf`` for identical images), or
    their mean as a float with ``reduction="mean"``."""
    _check(x, y, "psnr")
    _check_reduction(reduction, "psnr")
    err = (x.detach().double() - y.detach().double()).square().flatten(1).mean(1)
    return _reduce((10 * torch.log10(data_range ** 2 / err)).float(), reduction)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, *,
         reduction: str = "none") -> Union[torch.Tensor, float]:
    """Structural similarity per sample ``(B,)`` (scikit-image, Gaussian-free 7x7 window, channels
    averaged), or their mean as a float with ``reduction="mean"``."""
    _check(x, y, "ssim")
    _check_reduction(reduction, "ssim")
    a = x.detach().float().cpu().numpy()
    b = y.detach().float().cpu().numpy()
    win = min(7, *x.shape[-2:])
    win -= 1 - win % 2  # odd
    vals = [structural_similarity(p, q, data_range=data_range, channel_axis=0, win_size=win) for p, q in zip(a, b)]
    return _reduce(torch.tensor(np.asarray(vals, dtype=np.float32)), reduction)


def lpips(x: torch.Tensor, y: torch.Tensor, net=None, *, reduction: str = "none") -> Union[torch.Tensor, float]:
    """LPIPS (SqueezeNet, v0.1) per sample ``(B,)``, or their mean as a float with
    ``reduction="mean"``; lower is closer. ``net``: a prebuilt
    :func:`restore.losses.lpips_network` (default: the cached one for ``x``'s device)."""
    _check(x, y, "lpips")
    _check_reduction(reduction, "lpips")
    net = net if net is not None else lpips_network(str(x.device))
    with torch.no_grad():
        return _reduce(LPIPSLoss(net)(x.detach().float(), y.detach().float()).cpu(), reduction)
