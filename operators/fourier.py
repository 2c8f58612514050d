"""Partial Fourier sampling (MRI-like): the orthonormal 2-D DFT of each channel, kept on a mask."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ._checks import Dims, check_image_shape
from .base import LinearOperator
from .mask import as_mask_tensor

__all__ = ["PartialFourier"]


class PartialFourier(LinearOperator):
    """``y = S F x``: the orthonormal 2-D DFT ``F`` of every channel, sampled at the frequencies ``S`` of a mask.

    Shapes: ``(B, C, H, W) -> (B, C, K, 2)``, ``K`` the number of sampled frequencies.

    **How the complex measurements are held.** ``y`` is a real tensor whose last axis holds the
    real and imaginary parts (``torch.view_as_real`` layout): ``torch.view_as_complex(y)`` is the
    ``(B, C, K)`` complex k-space samples, and ``torch.view_as_real(z)`` turns your complex
    measurements ``z`` into an observation. The operator is thus a real-linear map
    ``R^(C H W) -> R^(2 C K)`` and its adjoint is exact for the real inner product ``<a, b> =
    sum(a * b)`` (which equals ``Re <z_a, z_b>`` on the complex samples):
    ``A^T y = Re(F^H S^T z)``. Noise of std ``sigma`` per real and imaginary part is
    ``GaussianNoise(sigma)`` on ``y``. The frequencies are in the order of a row-major scan of the mask.

    Args:
        shape: the per-sample image shape ``(C, H, W)``.
        mask: 0/1 ``(H, W)`` in **centred** layout (zero frequency at ``(H // 2, W // 2)``, as
            ``torch.fft.fftshift`` displays a spectrum), e.g. from ``operators.masks.fourier_*``;
            at least one frequency. Its ``seed`` attribute, when present, becomes ``op.seed``.

    ``F`` uses ``torch.fft.fft2(norm="ortho")``: ``O(n log n)``, and ``A A^T = I`` except that
    a real image's spectrum is Hermitian, so sampling both ``k`` and ``-k`` measures the same
    information twice. ``pinv`` is closed form, ``F^H D^+ F A^T y`` with ``D = (S^T S + its
    mirror image) / 2`` (``A^T A = F^H D F``); the norm is 1 when some ``k`` is sampled together with
    ``-k`` (always when the zero frequency is sampled), else ``sqrt(1/2)``.

    Example::

        >>> import torch
        >>> from operators import PartialFourier, masks
        >>> op = PartialFourier((1, 16, 16), masks.fourier_lines((16, 16), 0.25, seed=0))
        >>> y = op(torch.rand(2, 1, 16, 16))
        >>> y.shape, torch.view_as_complex(y).shape       # 4 lines of 16 frequencies
        (torch.Size([2, 1, 64, 2]), torch.Size([2, 1, 64]))
    """

    def __init__(self, shape: Sequence[int], mask):
        super().__init__()
        self.shape = check_image_shape(shape, "PartialFourier")
        centred = _check_mask(mask, self.shape)
        self.seed: Optional[int] = getattr(mask, "seed", None)
        h, w = self.shape[1:]
        rows, cols = torch.nonzero(centred, as_tuple=True)  # row-major scan of the centred mask
        index = ((rows - h // 2) % h) * w + (cols - w // 2) % w
        self.register_buffer("mask", centred)
        self.register_buffer("index", index)
        self.register_buffer("pinv_weight", _pinv_weight(torch.fft.ifftshift(centred)))
        self.k = len(index)

    @property
    def in_dims(self) -> Dims:
        return self.shape

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        return (self.shape[0], self.k, 2)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        spectrum = torch.fft.fft2(x, norm="ortho").flatten(-2)
        return torch.view_as_real(spectrum[..., self.index.to(x.device)])

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        return self._synthesize(torch.complex(y[..., 0], y[..., 1]))

    def _synthesize(self, z: torch.Tensor) -> torch.Tensor:
        """``Re(F^H S^T z)`` for samples ``z`` ``(B, C, K)`` complex -> ``(B, C, H, W)`` real."""
        c, h, w = self.shape
        full = z.new_zeros(z.shape[0], c, h * w).index_copy(-1, self.index.to(z.device), z)
        return torch.fft.ifft2(full.view(z.shape[0], c, h, w), norm="ortho").real

    def _pinv(self, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        weight = self.pinv_weight.to(dtype=y.dtype, device=y.device)
        spectrum = torch.fft.fft2(self.A_adjoint(y), norm="ortho") * weight
        return torch.fft.ifft2(spectrum, norm="ortho").real

    def spec(self) -> dict:
        return {"type": "PartialFourier", "shape": list(self.shape),
                "mask": self.mask.detach().cpu().numpy().astype(np.uint8)}

    def extra_repr(self) -> str:
        return f"shape={self.shape}, sampled={self.k}/{math.prod(self.shape[1:])}, seed={self.seed}"


def _pinv_weight(sampled: torch.Tensor) -> torch.Tensor:
    """``D^+`` for ``D = (P + P(-k)) / 2`` on the unshifted grid (``P`` the 0/1 sampling pattern)."""
    mirrored = torch.roll(torch.flip(sampled, (0, 1)), shifts=(1, 1), dims=(0, 1))  # P(-k mod N)
    d = (sampled + mirrored) / 2
    return torch.where(d > 0, 1 / d.clamp_min(0.5), torch.zeros_like(d))


def _check_mask(mask, shape: Tuple[int, int, int]) -> torch.Tensor:
    t = as_mask_tensor(mask)
    if t.shape[:2] != (1, 1) or tuple(t.shape[2:]) != shape[1:]:
        got = tuple(mask.shape) if hasattr(mask, "shape") else tuple(t.shape)
        raise ValueError(f"PartialFourier mask must be (H, W) = {shape[1:]} (centred k-space layout), got {got}")
    if not bool(t.any()):
        raise ValueError("PartialFourier mask samples no frequency: it needs at least one 1")
    return t[0, 0]
