"""Iterative solvers used by :class:`operators.LinearOperator`: CGLS and power iteration.

Both treat every sample of the batch as an independent problem (per-sample step sizes and
convergence tests), so a batch of per-sample masks is solved as B separate systems.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import torch

Map = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["cgls", "power_iteration"]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner product ``(B, ...) x (B, ...) -> (B,)``."""
    return (a * b).flatten(1).sum(1)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a ``(B,)`` vector to broadcast against ``like`` of shape ``(B, ...)``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def cgls(A: Map, At: Map, y: torch.Tensor, tol: float = 1e-6, max_iter: int = 200) -> torch.Tensor:
    """Minimum-norm least-squares solution of ``A x = y`` by conjugate gradient on the normal equations.

    CGLS (CG applied to ``A^T A x = A^T y`` without forming ``A^T A``) started from ``x = 0``
    stays in the row space of ``A`` and converges to the pseudo-inverse solution ``A^+ y``,
    also for rank-deficient ``A`` and observations outside the range of ``A``.

    Args:
        A, At: the operator and its adjoint; ``y`` has shape ``(B, ...)`` (the output of ``A``).
        tol: stop a sample once ``|A^T (y - A x)| <= tol * |A^T y|``.
        max_iter: iteration cap; a ``RuntimeWarning`` says when some sample has not converged.

    Returns:
        ``x`` with the shape of ``At(y)``.
    """
    with torch.no_grad():
        r = y.clone()
        s = At(r)
        x = torch.zeros_like(s)
        p = s.clone()
        gamma = _dot(s, s)
        stop = (tol ** 2) * gamma
        done = gamma <= stop
        for _ in range(max_iter):
            if bool(done.all()):
                break
            q = A(p)
            delta = _dot(q, q)
            alpha = torch.where(done | (delta == 0), torch.zeros_like(gamma), gamma / delta.clamp_min(1e-300))
            x = x + _per_sample(alpha, x) * p
            r = r - _per_sample(alpha, r) * q
            s = At(r)
            gamma_new = _dot(s, s)
            beta = torch.where(gamma > 0, gamma_new / gamma.clamp_min(1e-300), torch.zeros_like(gamma))
            p = s + _per_sample(beta, p) * p
            gamma = gamma_new
            done = done | (gamma <= stop)
        if not bool(done.all()):
            ratio = float((gamma / stop.clamp_min(1e-300)).max().sqrt()) * tol
            warnings.warn(f"pinv: conjugate gradient stopped after {max_iter} iterations with relative "
                          f"normal-equation residual {ratio:.2e} > tol={tol:.1e}; raise max_iter",
                          RuntimeWarning, stacklevel=3)
    return x


def power_iteration(normal: Map, v: torch.Tensor, max_iter: int = 200, tol: float = 1e-7) -> float:
    """Largest eigenvalue of the symmetric positive semi-definite map ``normal`` (e.g. ``A^T A``).

    ``v`` is the (random, seeded by the caller) start vector; the whole batch is treated as one
    vector, so for a block-diagonal (per-sample) operator this is the largest block's eigenvalue.
    Stops when the Rayleigh quotient changes by less than ``tol`` relative. Returns a float >= 0.
    """
    with torch.no_grad():
        v = v / v.norm()
        lam = 0.0
        for _ in range(max_iter):
            w = normal(v)
            lam_new = float((v * w).sum())
            w_norm = float(w.norm())
            if w_norm == 0.0 or not math.isfinite(w_norm):
                return max(lam_new, 0.0)
            v = w / w_norm
            if abs(lam_new - lam) <= tol * abs(lam_new):
                return lam_new
            lam = lam_new
    return lam
