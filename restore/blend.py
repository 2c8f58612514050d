"""Full-resolution image maths for :mod:`restore.fullres`: resizing, hole filling, luma keeping,
exact super-resolution consistency and feathered pasting. Pure functions of tensors.

Images are ``(B, C, H, W)`` float tensors; masks are 0/1 floats broadcasting against them.

Example::

    >>> import torch
    >>> from operators import Grayscale
    >>> gray, colour = torch.rand(1, 1, 5, 7), torch.rand(1, 3, 5, 7)
    >>> out = keep_luma(gray, colour, Grayscale().weights)
    >>> bool((Grayscale()(out) - gray).abs().max() < 1e-6)
    True
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from operators._solvers import cgls

__all__ = ["resize", "resize_masked", "push_pull", "fill_holes", "keep_luma", "make_consistent",
           "feather_weight"]

Map = Callable[[torch.Tensor], torch.Tensor]


def resize(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C, *size)`` bicubic (antialiased when shrinking); ``x`` itself when
    the size already matches (observed content is never resampled for nothing). Not clamped."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink)


def resize_masked(y: torch.Tensor, mask: torch.Tensor, size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resize a partly observed image: ``(y, mask) -> (y', mask')`` at ``size``.

    Area averaging of the observed pixels only (normalized: ``pool(M y) / pool(M)``), so holes
    never leak into the values; ``mask'`` is 1 where any observed pixel falls in the cell.
    Shapes: ``y`` ``(B, C, H, W)``, ``mask`` ``(Bm, Cm, H, W)`` -> ``(B, C, *size)``, ``(Bm, Cm, *size)``.
    """
    size = (int(size[0]), int(size[1]))
    mask = mask.to(y)
    if tuple(y.shape[-2:]) == size:
        return y * mask, mask
    num = F.adaptive_avg_pool2d(y * mask, size)
    den = F.adaptive_avg_pool2d(mask, size)
    seen = (den > 0).to(y)
    return num / den.clamp_min(1e-12) * seen, seen


def push_pull(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Scattered-data interpolation by a pyramid (push-pull): ``values`` where ``weight`` is 1,
    spread smoothly into the pixels where it is 0.

    Push: average ``weight * values`` and ``weight`` over 2x2 cells down to 1 pixel. Pull: a cell
    with any weight keeps its own weighted mean, an empty one takes the bilinear upsampling of
    the coarser level. Small holes get a local interpolation, large ones a smooth membrane that
    joins the values around them. Shapes: ``(B, C, H, W)`` values, ``(Bm, Cm, H, W)`` 0/1 weight.
    """
    levels = [(values * weight, weight.to(values).expand_as(values))]
    while max(levels[-1][0].shape[-2:]) > 1:
        a, w = levels[-1]
        levels.append((F.avg_pool2d(a, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    a, w = levels[-1]
    out = a / w.clamp_min(1e-12)
    for a, w in reversed(levels[:-1]):
        coarse = F.interpolate(out, size=a.shape[-2:], mode="bilinear", align_corners=False)
        out = torch.where(w > 0, a / w.clamp_min(1e-12), coarse)
    return out


def fill_holes(y: torch.Tensor, mask: torch.Tensor, prior_up: torch.Tensor) -> torch.Tensor:
    """Inpainting at full resolution: ``out = M y + (1 - M) clamp(x_up + r)``.

    ``x_up`` (``prior_up``) is the prior's image resized to the photo, ``r`` the observed residual
    ``y - x_up`` spread into the holes by :func:`push_pull`: the fill meets the observed pixels
    without a seam. Every observed pixel is ``y`` exactly. Shapes as ``y`` ``(B, C, H, W)``.
    """
    mask = mask.to(y)
    residual = push_pull(y - prior_up, mask)
    fill = (prior_up + residual).clamp(0, 1)
    return torch.where(mask.expand_as(y) > 0, y, fill)


def keep_luma(gray: torch.Tensor, colour: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Colorization at full resolution: the luma of ``gray``, the chroma of ``colour``.

    ``out = y 1 / s + t d`` with ``s = sum(weights)``, ``d = colour - Gray(colour) 1 / s`` (so
    ``Gray(d) = 0``) and ``t`` in [0, 1] per pixel, the largest keeping ``out`` in [0, 1]: where the
    chroma would leave the range it is shrunk toward gray, never the luma. ``Gray(out) = y`` to
    float precision. Shapes: ``(B, 1, H, W)``, ``(B, 3, H, W)`` -> ``(B, 3, H, W)``.
    """
    w = weights.to(colour).view(1, -1, 1, 1)
    s = w.sum()
    base = (gray / s).expand_as(colour)
    d = colour - (colour * w).sum(1, keepdim=True) / s
    room = torch.where(d > 0, (1 - base) / d.clamp_min(1e-12), torch.where(d < 0, base / (-d).clamp_min(1e-12),
                                                                       torch.ones_like(d)))
    t = room.amin(1, keepdim=True).clamp(0, 1)
    return base + t * d


def make_consistent(x: torch.Tensor, y: torch.Tensor, A: Map, At: Map, *, rounds: int = 3,
                    support: Optional[torch.Tensor] = None, range_tol: float = 0.5 / 255, tol: float = 1e-5,
                    max_iter: int = 500) -> torch.Tensor:
    """Bring ``x`` onto ``{x : A x = y}`` (e.g. ``A`` = ``Downsample``) by the projection
    ``x + A+ (y - A x)``, so ``A x = y`` to float precision.

    Where the projected image leaves [0, 1] by more than ``range_tol`` it is clamped and projected
    again, at most ``rounds`` times (alternating projections toward an image in [0, 1] that fits);
    the result is always a projection's, exact, leaving [0, 1] only by what exactness needs.
    ``support`` (0/1, broadcasting against ``x``): only those pixels change (a region pasted into a
    consistent photo); ``A+`` is then the pseudo-inverse of ``A`` restricted to them. CGLS with
    relative tolerance ``tol``. Shapes: ``x`` ``(B, C, H, W)``, ``y`` as ``A(x)``.
    """
    if support is None:
        support = torch.ones(1, 1, 1, 1)
    support = support.to(x)
    Ar, Atr = (lambda v: A(v * support)), (lambda r: At(r) * support)
    for i in range(rounds + 1):
        for _ in range(3):  # iterative refinement: a restricted support can be ill-conditioned
            residual = y - A(x)
            if float(residual.abs().max()) <= 1e-6:
                break
            x = x + cgls(Ar, Atr, residual, tol=tol, max_iter=max_iter) * support
        if i == rounds or float((x - x.clamp(0, 1)).abs().max()) <= range_tol:
            return x
        x = torch.where(support > 0, x.clamp(0, 1), x)
    return x


def feather_weight(size: Tuple[int, int], feather: int, open_sides: Sequence[bool]) -> torch.Tensor:
    """A ``(1, 1, H, W)`` blending weight: 1 inside, ramping linearly to ``0.5 / feather`` at each
    side flagged in ``open_sides`` = (top, bottom, left, right) (sides inside the photo, where a
    seam would show); sides on the photo's border stay at 1. ``feather`` in pixels (0: a hard edge).
    """
    h, w = int(size[0]), int(size[1])
    if feather <= 0:
        return torch.ones(1, 1, h, w)
    ramp_h = torch.ones(h)
    ramp_w = torch.ones(w)
    rows, cols = torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32)
    top, bottom, left, right = open_sides
    if top:
        ramp_h = torch.minimum(ramp_h, (rows + 0.5) / feather)
    if bottom:
        ramp_h = torch.minimum(ramp_h, (h - rows - 0.5) / feather)
    if left:
        ramp_w = torch.minimum(ramp_w, (cols + 0.5) / feather)
    if right:
        ramp_w = torch.minimum(ramp_w, (w - cols - 0.5) / feather)
    return (ramp_h.clamp(max=1)[:, None] * ramp_w.clamp(max=1)[None, :]).view(1, 1, h, w)
