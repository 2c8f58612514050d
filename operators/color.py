"""Colorization: RGB to ITU-R BT.601 luma."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ._checks import Dims
from .base import LinearOperator

__all__ = ["Grayscale", "BT601"]

BT601 = (0.299, 0.587, 0.114)


class Grayscale(LinearOperator):
    """ITU-R BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``.

    Shapes: ``(B, 3, H, W) -> (B, 1, H, W)``, any ``H, W``. For images in ``[0, 1]`` the output is
    in ``[0, 1]``. The adjoint spreads ``y`` back with the weights, ``(B, 1, H, W) -> (B, 3, H, W)``;
    ``pinv(y) = w y / |w|^2`` (the minimum-norm colour image with that luma, not a gray image);
    norm ``|w| ≈ 0.668``.

    Example::

        >>> import torch
        >>> from operators import Grayscale
        >>> Grayscale()(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 1, 4, 4])
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("weights", torch.tensor(BT601, dtype=torch.float32))

    @property
    def in_dims(self) -> Dims:
        return (3, None, None)

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        return (1,) + tuple(in_dims[1:])

    def _w(self, t: torch.Tensor) -> torch.Tensor:
        return self.weights.to(dtype=t.dtype, device=t.device).view(1, 3, 1, 1)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return (x * self._w(x)).sum(dim=1, keepdim=True)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        return y * self._w(y)

    def _pinv(self, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        w = self._w(y)
        return y * w / (w * w).sum()

    def spec(self) -> dict:
        return {"type": "Grayscale"}
