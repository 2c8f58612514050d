"""Super-resolution: anti-aliased downsampling by an integer factor, with its exact adjoint."""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ._checks import Dims
from .base import LinearOperator

__all__ = ["Downsample", "KERNELS"]

KERNELS = ("bicubic", "box", "gaussian")


def _cubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel with ``a = -0.5`` (as PIL, Matlab ``imresize`` and torch)."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def _taps(factor: int, kernel: str, sigma: float) -> Tuple[torch.Tensor, int]:
    """1-D filter taps (summing to 1, float64) and the offset of the first tap.

    Output sample ``i`` averages input samples ``factor * i + d`` around the block centre
    ``factor * i + (factor - 1) / 2`` (the pixel-centre convention of PIL / torch ``antialias``).
    """
    if kernel == "box":
        return torch.full((factor,), 1.0 / factor, dtype=torch.float64), 0
    centre = (factor - 1) / 2
    radius = 2.0 * factor if kernel == "bicubic" else 4.0 * sigma
    first, last = math.floor(centre - radius), math.ceil(centre + radius)
    d = torch.arange(first, last + 1, dtype=torch.float64)
    if kernel == "bicubic":
        w = _cubic((d - centre) / factor)
    else:
        w = torch.exp(-0.5 * ((d - centre) / sigma) ** 2) * ((d - centre).abs() <= radius)
    nz = torch.nonzero(w).flatten()
    w = w[nz[0]: nz[-1] + 1]
    return w / w.sum(), first + int(nz[0])


class Downsample(LinearOperator):
    """Anti-aliased decimation by an integer ``factor``: separable filter, then keep one sample in ``factor``.

    Args:
        factor: integer >= 1; input height and width must be divisible by it.
        kernel: ``"bicubic"`` (default; Keys ``a = -0.5`` stretched by ``factor``, i.e. the
            antialiased bicubic downscale of PIL ``Image.resize(..., BICUBIC)`` and
            ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``, which near the
            border drop the taps falling outside the image and renormalise the rest),
            ``"box"`` (mean over each ``factor x factor`` block) or ``"gaussian"``.
        sigma: Gaussian standard deviation in input pixels (default ``factor / 2``), truncated at
            ``4 sigma``; only for ``kernel="gaussian"``.

    Shapes: ``(B, C, H, W) -> (B, C, H / factor, W / factor)``, any ``C``. Values in ``[0, 1]``
    stay in ``[0, 1]`` for box and Gaussian (bicubic can overshoot slightly near edges). The
    adjoint is the exact transpose (transposed convolution), not an interpolation.
    ``pinv`` is closed-form for ``box`` (block replication) and CGLS otherwise.

    Example::

        >>> import torch
        >>> from operators import Downsample
        >>> op = Downsample(4)
        >>> op(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 3, 16, 16])
        >>> op.adjoint_error(torch.rand(1, 3, 64, 64, dtype=torch.float64)) < 1e-12
        True
    """

    def __init__(self, factor: int, kernel: str = "bicubic", sigma: Optional[float] = None):
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, numbers.Integral):
            raise TypeError(f"Downsample factor must be an int, got {type(factor).__name__} {factor!r}")
        if factor < 1:
            raise ValueError(f"Downsample factor must be >= 1, got {factor}")
        if kernel not in KERNELS:
            raise ValueError(f"Downsample kernel must be one of {KERNELS}, got {kernel!r}")
        if sigma is not None and kernel != "gaussian":
            raise ValueError(f"sigma applies only to kernel='gaussian', got kernel={kernel!r}, sigma={sigma}")
        if kernel == "gaussian":
            sigma = factor / 2 if sigma is None else float(sigma)
            if not sigma > 0:
                raise ValueError(f"Gaussian sigma must be > 0, got {sigma}")
        self.factor, self.kernel, self.sigma = int(factor), kernel, sigma
        taps, self._first = _taps(self.factor, kernel, sigma or 0.0)
        self.register_buffer("taps", taps.to(torch.float32))

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        c, h, w = in_dims
        return (c, None if h is None else h // self.factor, None if w is None else w // self.factor)

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        h, w = x.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(f"Downsample(factor={self.factor}) needs height and width divisible by "
                             f"{self.factor}, got input of shape {tuple(x.shape)} (H={h}, W={w})")

    # ---------------------------------------------------------------- one axis at a time
    def _geometry(self, length: int, axis: int, ref: torch.Tensor):
        """Padding, conv weight, stride and boundary normalisation for one axis of ``length`` samples."""
        f, k = self.factor, self.taps.to(dtype=ref.dtype, device=ref.device)
        n_out, size = length // f, k.numel()
        pad_lo = -self._first
        pad_hi = max(0, f * (n_out - 1) + size - length - pad_lo)
        shape, stride = ((1, 1, size, 1), (f, 1)) if axis == 2 else ((1, 1, 1, size), (1, f))
        weight = k.view(shape)
        ones = torch.ones(1, 1, length + pad_lo + pad_hi, dtype=ref.dtype, device=ref.device)
        ones[..., :pad_lo] = 0
        ones[..., pad_lo + length:] = 0
        norm = F.conv1d(ones, k.view(1, 1, -1), stride=f)[0, 0, :n_out]
        norm = norm.view(-1, 1) if axis == 2 else norm.view(1, -1)
        return pad_lo, pad_hi, weight, stride, norm

    def _down(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        length = x.shape[axis]
        lo, hi, weight, stride, norm = self._geometry(length, axis, x)
        pad = (0, 0, lo, hi) if axis == 2 else (lo, hi, 0, 0)
        out = F.conv2d(F.pad(x, pad), weight, stride=stride)
        return out.narrow(axis, 0, length // self.factor) / norm

    def _up(self, y: torch.Tensor, axis: int, length: int) -> torch.Tensor:
        lo, hi, weight, stride, norm = self._geometry(length, axis, y)
        out = F.conv_transpose2d(y / norm, weight, stride=stride)
        missing = length + lo + hi - out.shape[axis]
        out = F.pad(out, (0, 0, 0, missing) if axis == 2 else (0, missing, 0, 0))
        return out.narrow(axis, lo, length)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, c, h, w = x.shape
        out = self._down(self._down(x.reshape(b * c, 1, h, w), 2), 3)
        return out.reshape(b, c, h // self.factor, w // self.factor)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        b, c, h, w = y.shape
        f = self.factor
        out = self._up(self._up(y.reshape(b * c, 1, h, w), 3, w * f), 2, h * f)
        return out.reshape(b, c, h * f, w * f)

    def _pinv(self, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        if self.kernel == "box":  # A A^T = I / factor^2
            return self.A_adjoint(y) * self.factor ** 2
        return super()._pinv(y, tol, max_iter)

    def spec(self) -> dict:
        out = {"type": "Downsample", "factor": self.factor, "kernel": self.kernel}
        if self.kernel == "gaussian":
            out["sigma"] = self.sigma
        return out

    def extra_repr(self) -> str:
        extra = f", sigma={self.sigma}" if self.kernel == "gaussian" else ""
        return f"factor={self.factor}, kernel={self.kernel!r}{extra}, taps={self.taps.numel()}"
