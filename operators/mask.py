"""Inpainting: an elementwise 0/1 mask."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ._checks import Dims
from .base import LinearOperator

__all__ = ["Mask", "as_mask_tensor"]


def as_mask_tensor(mask) -> torch.Tensor:
    """Validate a 0/1 mask (tensor, numpy array or nested list) and return it as ``(Bm, Cm, H, W)`` float32.

    Accepted shapes: ``(H, W)``, ``(Cm, H, W)`` or ``(Bm, Cm, H, W)``. Boolean masks are allowed;
    any other value than 0 and 1 (NaN included) raises ``ValueError``.
    """
    if isinstance(mask, torch.Tensor):
        t = mask.detach().cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(mask))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"mask must be a tensor or an array of 0/1 values, got {type(mask).__name__}") from err
    if t.is_complex():
        raise TypeError(f"mask must hold real 0/1 values, got dtype {t.dtype}")
    if t.dim() not in (2, 3, 4):
        raise ValueError(f"mask must have shape (H, W), (C, H, W) or (B, C, H, W), got {tuple(t.shape)}")
    t = t.to(torch.float32)
    bad = ~((t == 0) | (t == 1))
    if bool(bad.any()):
        example = t[bad][0].item()
        raise ValueError(f"mask must contain only 0 (missing) and 1 (observed), got {int(bad.sum())} "
                         f"other values such as {example}")
    while t.dim() < 4:
        t = t.unsqueeze(0)
    return t.contiguous()


class Mask(LinearOperator):
    """Elementwise mask: ``A(x) = mask * x``; 1 marks an observed pixel, 0 a missing one.

    Args:
        mask: 0/1 values of shape ``(H, W)``, ``(Cm, H, W)`` or ``(Bm, Cm, H, W)`` (tensor, numpy
            array or bool). ``Cm = 1`` broadcasts over channels; ``Bm > 1`` holds one mask per
            sample and then inputs must have batch size ``Bm``.

    Shapes: ``(B, C, H, W) -> (B, C, H, W)`` (missing pixels are 0 in the observation).
    ``A`` is an orthogonal projection: self-adjoint, ``pinv(y) = mask * y``, norm 1 (0 if empty).
    ``seed`` is taken from the ``seed`` attribute that :mod:`operators.masks` sets on generated masks.

    Example::

        >>> import torch
        >>> from operators import Mask, masks
        >>> op = Mask(masks.random_pixels((8, 8), keep=0.25, seed=0))
        >>> y = op(torch.rand(2, 3, 8, 8))
        >>> int((y[0, 0] != 0).sum())
        16
    """

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", as_mask_tensor(mask))
        self.seed: Optional[int] = getattr(mask, "seed", None)
        self.batch_size = self.mask.shape[0] if self.mask.shape[0] > 1 else None

    @property
    def in_dims(self) -> Dims:
        _, c, h, w = self.mask.shape
        return (c if c > 1 else None, h, w)

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        return tuple(in_dims)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return x * self.mask.to(dtype=x.dtype, device=x.device)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        return y * self.mask.to(dtype=y.dtype, device=y.device)

    def _pinv(self, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        return y * self.mask.to(dtype=y.dtype, device=y.device)

    def spec(self) -> dict:
        return {"type": "Mask", "mask": self.mask.detach().cpu().numpy().astype(np.uint8)}

    def extra_repr(self) -> str:
        frac = float(self.mask.float().mean())
        return f"mask={tuple(self.mask.shape)}, observed={frac:.3f}, seed={self.seed}"
