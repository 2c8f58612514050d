"""Sparse matrix products for :class:`operators.Matrix`, differentiable in every ``torch.func`` mode.

A sparse ``(m, n)`` matrix is held as plain CSR arrays (``crow``, ``col`` int64 and ``val``
float buffers, so ``.to(device)`` / ``.double()`` / ``state_dict`` treat them as any buffer) for
``M`` and for ``M^T``. Each product builds a torch sparse CSR tensor over them (no copy) and
multiplies a dense batch (``O(B nnz)``, MKL / cuSPARSE). One ``autograd.Function`` uses the
transpose for the backward pass and ``M`` for the forward-mode product, and folds a ``vmap``
dimension into the batch, so gradients, ``torch.func.jvp`` under ``vmap`` (the
Levenberg-Marquardt polish) and double backward all work, which torch's own sparse tensors do not
offer (no forward-mode AD, no ``vmap``).
"""
from __future__ import annotations

import warnings
from typing import NamedTuple, Tuple

import torch

__all__ = ["CsrPair", "csr_product"]


class CsrPair(NamedTuple):
    """CSR arrays ``(crow, col, val)`` of ``M`` ``(m, n)`` and of ``M^T``, with ``shape = (m, n)``."""

    fwd: Tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    adj: Tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    shape: Tuple[int, int]

    def transposed(self) -> "CsrPair":
        return CsrPair(self.adj, self.fwd, (self.shape[1], self.shape[0]))


def _spmm(pair: CsrPair, x: torch.Tensor) -> torch.Tensor:
    """``M x`` for a dense ``x`` ``(B, n)`` -> ``(B, m)`` contiguous, in ``x``'s dtype."""
    crow, col, val = pair.fwd
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta state"
        M = torch.sparse_csr_tensor(crow, col, val.to(x.dtype), pair.shape, check_invariants=False)
    return (M @ x.t().contiguous()).t().contiguous()


class _CsrProduct(torch.autograd.Function):
    """``x -> M x`` for ``x`` ``(B, n)``; ``pair`` is a constant (never differentiated)."""

    @staticmethod
    def forward(x, pair):
        return _spmm(pair, x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.pair = inputs[1]

    @staticmethod
    def backward(ctx, grad):
        return _CsrProduct.apply(grad, ctx.pair.transposed()), None

    @staticmethod
    def jvp(ctx, x_dot, _):
        return _CsrProduct.apply(x_dot, ctx.pair)

    @staticmethod
    def vmap(info, in_dims, x, pair):
        x = x.movedim(in_dims[0], 0)  # (V, B, n): the product is linear in each row, so fold V into B
        out = _CsrProduct.apply(x.reshape(-1, x.shape[-1]), pair)
        return out.reshape(x.shape[0], x.shape[1], -1), 0


def csr_product(x: torch.Tensor, pair: CsrPair) -> torch.Tensor:
    """``M x`` for ``x`` ``(B, n)`` -> ``(B, m)``; pass ``pair.transposed()`` for ``M^T``."""
    return _CsrProduct.apply(x, pair)
