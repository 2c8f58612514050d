"""A user's measurement matrix, dense or sparse, acting on flattened images."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from ._checks import Dims, check_sizes
from ._sparse import CsrPair, csr_product
from .base import LinearOperator

__all__ = ["Matrix"]

_LSTSQ_MAX_ENTRIES = 1 << 22  # dense matrices up to 4M entries get an exact SVD-based pinv on CPU


class Matrix(LinearOperator):
    """``y = M vec(x)``: a dense or sparse ``(m, n)`` matrix applied to flattened images.

    Shapes: ``(B, *in_shape) -> (B, m)`` with ``n = prod(in_shape)``; ``vec`` flattens each sample
    in C order (``x.reshape(B, n)``). The adjoint is the transpose, ``(B, m) -> (B, *in_shape)``.

    Args:
        M: the matrix ``(m, n)``: a torch tensor, numpy array or nested list (dense), or a
            ``scipy.sparse`` matrix or array in any format (CSR, CSC, COO, ...) or a torch sparse
            tensor (sparse). Real values, finite. float64 entries stay float64, anything else
            becomes float32; ``op.double()`` / ``op.float()`` convert later.
        in_shape: the per-sample image shape, usually ``(C, H, W)``.

    Dense matrices are a buffer ``matrix`` (``batch @ M^T``). Sparse ones are CSR arrays of ``M``
    and of ``M^T`` (buffers ``crow, col, val`` and ``crow_t, col_t, val_t``, ``2 nnz`` entries; see
    :mod:`operators._sparse`): ``O(B nnz)`` torch sparse products, differentiable in reverse and
    forward mode and under ``vmap``. Explicit zeros are dropped and COO duplicates summed.
    ``pinv``: for a dense matrix on the CPU with at most 4M entries, the exact minimum-norm
    least-squares solution (SVD-based ``torch.linalg.lstsq``, ``gelsd``); otherwise CGLS.
    ``spec()`` holds the matrix itself (CSR arrays when sparse), so ``from_spec`` rebuilds it.

    Example::

        >>> import torch, scipy.sparse
        >>> from operators import Matrix
        >>> M = scipy.sparse.random(20, 3 * 4 * 4, density=0.2, format="csr", random_state=0)
        >>> op = Matrix(M, (3, 4, 4))
        >>> x = torch.rand(2, 3, 4, 4)
        >>> op(x).shape, op.adjoint(op(x)).shape
        (torch.Size([2, 20]), torch.Size([2, 3, 4, 4]))
        >>> bool(torch.allclose(op(x), torch.from_numpy(M @ x.reshape(2, -1).double().numpy().T).T.float()))
        True
    """

    def __init__(self, M, in_shape: Sequence[int]):
        super().__init__()
        self.shape = check_sizes(in_shape, "Matrix in_shape")
        self.n = math.prod(self.shape)
        csr = _as_csr(M)
        if csr is None:
            dense = _as_dense(M)
            self._check_columns(dense.shape)
            self.m, self.sparse = dense.shape[0], False
            self.register_buffer("matrix", dense)
        else:
            self._check_columns(csr.shape)
            self.m, self.sparse = csr.shape[0], True
            for name, part in (("", csr), ("_t", csr.T.tocsr())):
                part.sort_indices()
                self.register_buffer("crow" + name, torch.from_numpy(part.indptr.astype(np.int64)))
                self.register_buffer("col" + name, torch.from_numpy(part.indices.astype(np.int64)))
                self.register_buffer("val" + name, torch.from_numpy(part.data.copy()))

    def _check_columns(self, mshape: Tuple[int, ...]) -> None:
        if mshape[1] != self.n or mshape[0] < 1:
            raise ValueError(f"Matrix M must have shape (m, n) with m >= 1 and n = prod(in_shape) = "
                             f"{'*'.join(map(str, self.shape))} = {self.n}, got {tuple(mshape)}")

    @property
    def in_dims(self) -> Dims:
        return self.shape

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        return (self.m,)

    def _product(self, v: torch.Tensor, transpose: bool) -> torch.Tensor:
        """``M v`` (or ``M^T v``) for ``v`` ``(B, n)`` (``(B, m)``) in ``v``'s dtype and device."""
        if not self.sparse:
            M = self.matrix.to(dtype=v.dtype, device=v.device)
            return v @ M if transpose else v @ M.T
        pair = CsrPair((self.crow, self.col, self.val), (self.crow_t, self.col_t, self.val_t), (self.m, self.n))
        return csr_product(v, pair.transposed() if transpose else pair)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self._product(x.reshape(x.shape[0], self.n), transpose=False)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        return self._product(y, transpose=True).reshape(y.shape[0], *self.shape)

    def _pinv(self, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        if self.sparse or y.device.type != "cpu" or self.m * self.n > _LSTSQ_MAX_ENTRIES:
            return super()._pinv(y, tol, max_iter)
        M = self.matrix.to(dtype=y.dtype)
        x = torch.linalg.lstsq(M, y.T, driver="gelsd").solution
        return x.T.reshape(y.shape[0], *self.shape)

    def spec(self) -> dict:
        base = {"type": "Matrix", "in_shape": list(self.shape)}
        if not self.sparse:
            return {**base, "matrix": self.matrix.detach().cpu().numpy()}
        arrays = {k: getattr(self, b).detach().cpu().numpy() for k, b in
                  (("indptr", "crow"), ("indices", "col"), ("data", "val"))}
        return {**base, "sparse": {"shape": [self.m, self.n], **arrays,
                                   "dtype": str(self.val.dtype).replace("torch.", "")}}

    @classmethod
    def from_spec(cls, args: dict) -> "Matrix":
        """Rebuild from the keys of :meth:`spec` (arrays may have become lists through JSON)."""
        if "sparse" not in args:
            return cls(np.asarray(args["matrix"], dtype=np.float64), args["in_shape"])
        from scipy.sparse import csr_matrix
        s = args["sparse"]
        data = np.asarray(s["data"], dtype=np.dtype(s.get("dtype", "float64")))
        csr = csr_matrix((data, np.asarray(s["indices"], dtype=np.int64), np.asarray(s["indptr"], dtype=np.int64)),
                         shape=tuple(s["shape"]))
        return cls(csr, args["in_shape"])

    def extra_repr(self) -> str:
        kind = f"sparse, nnz={self.val.numel()}" if self.sparse else "dense"
        return f"m={self.m}, in_shape={self.shape}, {kind}"


def _as_csr(M):
    """A sorted scipy CSR copy of a sparse ``M`` (scipy or torch), or None when ``M`` is dense."""
    import scipy.sparse
    if isinstance(M, torch.Tensor) and M.layout != torch.strided:
        M = M.detach().cpu().to_sparse_coo().coalesce()
        idx, vals = M.indices().numpy(), M.values().numpy()
        M = scipy.sparse.coo_matrix((vals, (idx[0], idx[1])), shape=tuple(M.shape))
    if not scipy.sparse.issparse(M):
        return None
    if M.ndim != 2:
        raise ValueError(f"Matrix M must be 2-D (m, n), got shape {M.shape}")
    real = np.issubdtype(M.dtype, np.integer) or np.issubdtype(M.dtype, np.floating) or M.dtype == np.bool_
    if not real:
        raise TypeError(f"Matrix M must hold real numbers, got dtype {M.dtype} (for complex models stack "
                        f"the real and imaginary parts as rows)")
    csr = scipy.sparse.csr_matrix(M, dtype=np.float64 if M.dtype == np.float64 else np.float32, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    if not np.isfinite(csr.data).all():
        raise ValueError(f"Matrix M must be finite, got {int((~np.isfinite(csr.data)).sum())} NaN or infinite entries")
    return csr


def _as_dense(M) -> torch.Tensor:
    """A contiguous float32/float64 ``(m, n)`` tensor copy of a dense ``M``."""
    if isinstance(M, torch.Tensor):
        t = M.detach().cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(M))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"Matrix M must be a tensor, an array or a scipy.sparse matrix, "
                            f"got {type(M).__name__}") from err
    if t.is_complex():
        raise TypeError(f"Matrix M must hold real numbers, got dtype {t.dtype} (for complex models stack "
                        f"the real and imaginary parts as rows)")
    if t.dim() != 2:
        raise ValueError(f"Matrix M must be 2-D (m, n), got shape {tuple(t.shape)}")
    t = t.to(torch.float64 if t.dtype == torch.float64 else torch.float32).clone().contiguous()
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        raise ValueError(f"Matrix M must be finite, got {int(bad.sum())} NaN or infinite entries")
    return t
