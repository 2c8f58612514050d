"""Compressed sensing: ``m`` random linear measurements of the whole image."""
from __future__ import annotations

import math
import numbers
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ._checks import Dims, seeded_generator, check_image_shape
from .base import LinearOperator

__all__ = ["CompressedSensing", "fwht", "KINDS"]

KINDS = ("gaussian", "srht")
_MAX_BLOCK_BITS = 4  # Hadamard applied as a Kronecker product of blocks of at most 16 x 16


def _hadamard(size: int, ref: torch.Tensor) -> torch.Tensor:
    """Unnormalised Sylvester Hadamard matrix ``(size, size)`` of +-1 (``size`` a power of two)."""
    h = torch.ones(1, 1, dtype=ref.dtype, device=ref.device)
    while h.shape[0] < size:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def _block_bits(bits: int) -> List[int]:
    """Split ``bits`` into near-equal chunks of at most ``_MAX_BLOCK_BITS``."""
    chunks = max(1, math.ceil(bits / _MAX_BLOCK_BITS))
    return [bits // chunks + (1 if i < bits % chunks else 0) for i in range(chunks)]


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal fast Walsh-Hadamard transform along the last axis (length a power of two).

    ``H_{2^k} = H_{2^a} ⊗ H_{2^b} ⊗ ...``: each small block acts on one axis of a reshaped view,
    ``O(n log n)`` work, no ``n x n`` matrix. Symmetric and orthogonal: ``fwht(fwht(x)) == x``.
    """
    n = x.shape[-1]
    bits = n.bit_length() - 1
    if n != 1 << bits:
        raise ValueError(f"fwht needs a power-of-two length, got {n}")
    lead = x.shape[:-1]
    rows = math.prod(lead)
    before, after = rows, n
    for b in _block_bits(bits):
        size = 1 << b
        after //= size
        x = torch.matmul(_hadamard(size, x), x.reshape(before, size, after))
        before *= size
    return x.reshape(*lead, n) * (n ** -0.5)


class CompressedSensing(LinearOperator):
    """``m`` random measurements of a ``(C, H, W)`` image: ``(B, C, H, W) -> (B, m)``.

    Args:
        m: number of measurements, ``1 <= m <= n = C * H * W``.
        shape: the per-sample image shape ``(C, H, W)``.
        kind: ``"gaussian"``: a dense ``(m, n)`` matrix of i.i.d. ``N(0, 1/m)`` entries (a buffer
            of ``4 m n`` bytes in float32). ``"srht"``: subsampled randomized Hadamard transform
            ``sqrt(n_pad / m) * S H D P``: ``P`` zero-pads to ``n_pad = 2^ceil(log2 n)``, ``D``
            flips signs at random, ``H`` is the orthonormal Walsh-Hadamard transform (fast, never
            a matrix), ``S`` keeps ``m`` random rows. ``O(n log n)`` time, ``O(n)`` memory.
        seed: seed of the random draw (CPU ``torch.Generator``, so the same on every device);
            ``None`` draws a fresh one, recorded as ``op.seed`` (``from_spec(op.spec())`` rebuilds it).

    Both kinds satisfy ``E[A^T A] = I``, so ``|A x| ≈ |x|``. ``pinv`` uses CGLS. Inputs of another
    dtype than the buffers are handled by casting per call; for float64 work with the Gaussian
    kind call ``op.double()`` once instead of copying the matrix at every call.

    Example::

        >>> import torch
        >>> from operators import CompressedSensing
        >>> op = CompressedSensing(100, (3, 16, 16), kind="srht", seed=0)
        >>> op(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 100])
    """

    def __init__(self, m: int, shape: Sequence[int], kind: str = "gaussian", seed: Optional[int] = None):
        super().__init__()
        self.shape = check_image_shape(shape, "CompressedSensing")
        self.n = math.prod(self.shape)
        self.m = _check_m(m, self.n, self.shape)
        if kind not in KINDS:
            raise ValueError(f"CompressedSensing kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        gen, self.seed = seeded_generator(seed)
        if kind == "gaussian":
            matrix = torch.randn(self.m, self.n, generator=gen, dtype=torch.float32)
            self.register_buffer("matrix", matrix.mul_(self.m ** -0.5))
        else:
            self.n_pad = 1 << max(0, (self.n - 1).bit_length())
            signs = torch.randint(0, 2, (self.n,), generator=gen, dtype=torch.int8)
            self.register_buffer("signs", signs.to(torch.float32).mul_(2).sub_(1))
            rows = torch.randperm(self.n_pad, generator=gen)[: self.m].sort().values
            self.register_buffer("rows", rows)

    @property
    def in_dims(self) -> Dims:
        return self.shape

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        return (self.m,)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        flat = x.reshape(x.shape[0], self.n)
        if self.kind == "gaussian":
            return flat @ self.matrix.to(dtype=x.dtype, device=x.device).T
        padded = F.pad(flat * self.signs.to(dtype=x.dtype, device=x.device), (0, self.n_pad - self.n))
        return fwht(padded)[:, self.rows.to(x.device)] * math.sqrt(self.n_pad / self.m)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        batch = y.shape[0]
        if self.kind == "gaussian":
            flat = y @ self.matrix.to(dtype=y.dtype, device=y.device)
        else:
            padded = y.new_zeros(batch, self.n_pad)
            padded[:, self.rows.to(y.device)] = y * math.sqrt(self.n_pad / self.m)
            flat = fwht(padded)[:, : self.n] * self.signs.to(dtype=y.dtype, device=y.device)
        return flat.reshape(batch, *self.shape)

    def spec(self) -> dict:
        return {"type": "CompressedSensing", "m": self.m, "shape": list(self.shape),
                "kind": self.kind, "seed": self.seed}

    def extra_repr(self) -> str:
        return f"m={self.m}, shape={self.shape}, kind={self.kind!r}, seed={self.seed}"


def _check_m(m: int, n: int, shape: Tuple[int, int, int]) -> int:
    if isinstance(m, bool) or not isinstance(m, numbers.Integral):
        raise TypeError(f"CompressedSensing m must be an int, got {type(m).__name__} {m!r}")
    if m <= 0:
        raise ValueError(f"CompressedSensing needs m >= 1 measurements, got m={m}")
    if m > n:
        raise ValueError(f"CompressedSensing needs m <= n = C*H*W = {'*'.join(map(str, shape))} = {n}, got m={m}")
    return int(m)
