"""Sparse matrix products for :class:`operators.Matrix`, deterministic and ``torch.func``-ready.

A sparse ``(m, n)`` matrix is held as two padded row layouts ("ELLPACK"): for each row, the
column indices and values of its stored entries, padded with value 0 to the longest row. The
product is a gather and a sum (``O(B nnz)`` work, no atomics, so it gives the same bits on every
run, on CPU and CUDA). The transpose gets its own layout, and one ``autograd.Function`` uses it
for the backward pass and the forward-mode product, so gradients, ``torch.func.jvp`` and
``vmap`` (the Levenberg-Marquardt polish) all work. Memory: ``m * (longest row)`` entries, at
most the dense size.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

__all__ = ["ell_layout", "ell_product", "csr_from_ell"]

_CHUNK = 1 << 24  # gathered entries per chunk of rows: bounds the (B, rows, k) temporary


def ell_layout(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
               dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """Padded ``(rows, k)`` column indices (int64) and values (``dtype``) of a CSR matrix."""
    counts = np.diff(indptr)
    rows, width = len(counts), max(int(counts.max(initial=0)), 1)
    row_of = np.repeat(np.arange(rows), counts)
    slot = np.arange(len(indices)) - np.repeat(indptr[:-1], counts)
    cols = np.zeros((rows, width), dtype=np.int64)
    vals = np.zeros((rows, width), dtype=np.float64)
    cols[row_of, slot] = indices
    vals[row_of, slot] = data
    return torch.from_numpy(cols), torch.from_numpy(vals).to(dtype)


def csr_from_ell(cols: torch.Tensor, vals: torch.Tensor) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr, indices, data)`` of the nonzero entries of a padded layout, in stored order."""
    vals_np = vals.detach().cpu().numpy()
    keep = vals_np != 0
    indptr = np.concatenate([[0], np.cumsum(keep.sum(1))]).astype(np.int64)
    return indptr, cols.detach().cpu().numpy()[keep], vals_np[keep]


def _gather_sum(x: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    """``(B, n) -> (B, rows)``: ``out[b, i] = sum_j vals[i, j] * x[b, cols[i, j]]``."""
    step = max(1, _CHUNK // max(1, x.shape[0] * cols.shape[1]))
    parts = [(x[:, c] * v).sum(-1) for c, v in zip(cols.split(step), vals.split(step))]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class _EllProduct(torch.autograd.Function):
    """``x -> M x`` for ``x`` ``(B, n)``; backward and jvp use the layouts of ``M^T`` and ``M``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, cols, vals, cols_t, vals_t):
        return _gather_sum(x, cols, vals)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, cols, vals, cols_t, vals_t = inputs
        ctx.save_for_backward(cols, vals, cols_t, vals_t)
        ctx.save_for_forward(cols, vals, cols_t, vals_t)

    @staticmethod
    def backward(ctx, grad):
        cols, vals, cols_t, vals_t = ctx.saved_tensors
        return _EllProduct.apply(grad, cols_t, vals_t, cols, vals), None, None, None, None

    @staticmethod
    def jvp(ctx, x_dot, *unused):
        cols, vals, cols_t, vals_t = ctx.saved_tensors
        return _EllProduct.apply(x_dot, cols, vals, cols_t, vals_t)


def ell_product(x: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor,
                cols_t: torch.Tensor, vals_t: torch.Tensor) -> torch.Tensor:
    """``M x`` for ``x`` ``(B, n)`` -> ``(B, m)``, given the layouts of ``M`` and of ``M^T``."""
    return _EllProduct.apply(x, cols, vals, cols_t, vals_t)
