"""Single-pixel imaging: the image seen through ``m`` Walsh-Hadamard patterns, one number each."""
from __future__ import annotations

import numbers
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ._checks import Dims, seeded_generator, check_image_shape
from .base import LinearOperator
from .compressed_sensing import fwht

__all__ = ["SinglePixel", "ORDERINGS", "sequency_of_natural"]

ORDERINGS = ("sequency", "random")


def sequency_of_natural(size: int) -> torch.Tensor:
    """For each row ``k`` of the Sylvester Hadamard matrix of ``size`` (a power of two), its
    sequency (number of sign changes along the row): ``(size,)`` int64.

    The row of sequency ``s`` is the bit reversal of the Gray code ``s ^ (s >> 1)``.
    """
    bits = size.bit_length() - 1
    s = torch.arange(size)
    gray = s ^ (s >> 1)
    natural = torch.zeros_like(s)
    for b in range(bits):
        natural |= ((gray >> b) & 1) << (bits - 1 - b)
    out = torch.empty_like(s)
    out[natural] = s
    return out


def _sequency_order(h_pad: int, w_pad: int) -> torch.Tensor:
    """All ``h_pad * w_pad`` 2-D patterns (flat natural indices ``r * w_pad + c``) sorted by total
    sequency ``s_r + s_c``, ties by ``s_r``: coarse patterns first."""
    s_r, s_c = sequency_of_natural(h_pad), sequency_of_natural(w_pad)
    key = (s_r[:, None] + s_c[None, :]) * h_pad + s_r[:, None]
    return torch.argsort(key.flatten(), stable=True)


class SinglePixel(LinearOperator):
    """``m`` single-pixel measurements per channel: ``(B, C, H, W) -> (B, C, m)``.

    Each measurement is the inner product of the image with a 2-D Walsh-Hadamard pattern: ``H``
    and ``W`` are zero-padded to powers of two ``H_pad, W_pad``, the orthonormal Hadamard transform
    of size ``n_pad = H_pad W_pad`` is applied by the fast Walsh-Hadamard transform (``O(n log n)``,
    never a matrix; the one of :class:`~operators.CompressedSensing`'s SRHT), and ``m`` of its rows are
    kept. Patterns take the values ``+-1 / sqrt(n_pad)`` (the differential +-1 convention; a camera
    with 0/1 patterns ``p`` gets them as ``2 p - 1`` from two exposures); every channel is measured
    with the same patterns (a colour detector).

    Args:
        m: patterns per channel, ``1 <= m <= H * W``.
        shape: per-sample image shape ``(C, H, W)``.
        ordering: ``"sequency"``: the ``m`` coarsest patterns, by total sequency (sign changes along
            rows plus along columns), the usual low-pass single-pixel scheme; deterministic.
            ``"random"``: ``m`` patterns drawn uniformly from all ``n_pad``, from ``seed``.
        seed: only for ``ordering="random"``; ``None`` draws one and records it as ``op.seed``.

    Without padding (``H``, ``W`` powers of two) the rows are orthonormal, ``A A^T = I``, so
    ``pinv = A^T`` and the norm is 1; with padding ``pinv`` uses CGLS. ``op.patterns()`` returns the
    ``(m, H, W)`` patterns (cropped to the image).

    Example::

        >>> import torch
        >>> from operators import SinglePixel
        >>> op = SinglePixel(64, (1, 16, 16))
        >>> x = torch.rand(2, 1, 16, 16)
        >>> op(x).shape
        torch.Size([2, 1, 64])
        >>> bool(torch.allclose(op(x)[:, 0, 0], x.flatten(1).sum(1) / 16))   # the first pattern is flat
        True
    """

    def __init__(self, m: int, shape: Sequence[int], ordering: str = "sequency", seed: Optional[int] = None):
        super().__init__()
        self.shape = check_image_shape(shape, "SinglePixel")
        _, h, w = self.shape
        self.m = _check_m(m, h * w)
        if ordering not in ORDERINGS:
            raise ValueError(f"SinglePixel ordering must be one of {ORDERINGS}, got {ordering!r}")
        if ordering == "sequency" and seed is not None:
            raise ValueError("SinglePixel seed applies only to ordering='random' (sequency is deterministic)")
        self.ordering = ordering
        self.h_pad, self.w_pad = (1 << max(0, (d - 1).bit_length()) for d in (h, w))
        n_pad = self.h_pad * self.w_pad
        if ordering == "random":
            gen, self.seed = seeded_generator(seed)
            order = torch.randperm(n_pad, generator=gen)
        else:
            order = _sequency_order(self.h_pad, self.w_pad)
        self.register_buffer("rows", order[: self.m].clone())
        self.register_buffer("probe", torch.empty(0))  # no float data: records dtype/device for norm() probes

    @property
    def padded(self) -> bool:
        return (self.h_pad, self.w_pad) != self.shape[1:]

    @property
    def in_dims(self) -> Dims:
        return self.shape

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        return (self.shape[0], self.m)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        b, c, h, w = x.shape
        padded = F.pad(x, (0, self.w_pad - w, 0, self.h_pad - h))
        return fwht(padded.reshape(b, c, -1))[..., self.rows.to(x.device)]

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        b, c = y.shape[:2]
        full = y.new_zeros(b, c, self.h_pad * self.w_pad).index_copy(-1, self.rows.to(y.device), y)
        return fwht(full).view(b, c, self.h_pad, self.w_pad)[..., : self.shape[1], : self.shape[2]]

    def _pinv(self, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        return super()._pinv(y, tol, max_iter) if self.padded else self.A_adjoint(y)

    def patterns(self) -> torch.Tensor:
        """The ``(m, H, W)`` patterns (measurement ``i`` is ``sum(pattern[i] * x[c])``), float32."""
        eye = torch.eye(self.m, device=self.rows.device).view(self.m, 1, self.m)
        return self.A_adjoint(eye.expand(self.m, self.shape[0], self.m).contiguous())[:, 0]

    def spec(self) -> dict:
        return {"type": "SinglePixel", "m": self.m, "shape": list(self.shape), "ordering": self.ordering,
                "seed": self.seed}

    def extra_repr(self) -> str:
        return (f"m={self.m}, shape={self.shape}, padded=({self.h_pad}, {self.w_pad}), "
                f"ordering={self.ordering!r}, seed={self.seed}")


def _check_m(m: int, n: int) -> int:
    if isinstance(m, bool) or not isinstance(m, numbers.Integral):
        raise TypeError(f"SinglePixel m must be an int, got {type(m).__name__} {m!r}")
    if not 1 <= m <= n:
        raise ValueError(f"SinglePixel needs 1 <= m <= H*W = {n} patterns, got m={m}")
    return int(m)
