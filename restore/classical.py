"""Classical sparse reconstruction for any linear operator: FISTA with a wavelet, DCT or TV prior.

The baselines a GAN prior must beat on compressed sensing (and usable on any other task). For
observations ``y = A x + noise`` of images ``x`` ``(B, C, H, W)``, :func:`sparse_reconstruct`
solves, per sample,

    min_x  1/2 |S (A x - y)|^2 + lam R(x)

by FISTA (Beck & Teboulle 2009: gradient step ``1/L`` on the data term, ``L = |A|^2`` by power
iteration, then the proximal map of ``lam R``, with Nesterov momentum), where ``R`` is

- ``"haar"``: ``|W x|_1`` over the detail coefficients of an orthonormal multi-level 2-D Haar
  transform ``W`` (the coarsest approximation is not penalized), per channel;
- ``"dct"``: ``|D x|_1`` over the orthonormal 2-D DCT-II coefficients but the DC term, per channel;
- ``"tv"``: isotropic total variation coupled over channels, ``sum_pixels |grad x|_2``, whose
  proximal map (with the box ``[0, 1]``) is computed by the fast gradient projection of Beck &
  Teboulle (2009) on the dual, warm-started across outer iterations.

For the orthonormal bases the proximal map is exact soft-thresholding of the coefficients.

**How lambda is chosen** (a rule, never tuned per image): when ``lam`` is not given, a seeded
random ``holdout`` fraction of the observed entries of ``y`` (``S`` = 0 there) is held out, FISTA
runs down a fixed geometric grid ``lam_k = lam_max * fracs[k]`` with warm starts (``lam_max`` is
the smallest lambda for which 0 solves the ``"haar"``/``"dct"`` problem, ``|W A^T y|_inf``; for
``"tv"`` it is ``|A^T y|_inf``), and each sample keeps the lambda with the lowest held-out
residual (cross-validation for compressed sensing, Ward 2009). The final solve then uses every
entry. Noise enters only through the held-out residual, so no ``sigma`` is needed.

Example::

    >>> import torch
    >>> from operators import CompressedSensing
    >>> x = torch.rand(2, 3, 16, 16)
    >>> op = CompressedSensing(300, (3, 16, 16), seed=0)
    >>> sparse_reconstruct(op(x), op, (3, 16, 16), regularizer="tv", iters=20, iters_per_lam=10).shape
    torch.Size([2, 3, 16, 16])
    >>> sparse_reconstruct(op(x), op, (3, 16, 16), regularizer="haar", lam=0.01, iters=20).shape
    torch.Size([2, 3, 16, 16])
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import torch

from operators._solvers import power_iteration

__all__ = ["REGULARIZERS", "DEFAULT_FRACS", "sparse_reconstruct", "choose_lambda", "fista", "haar2", "ihaar2",
           "dct2", "idct2", "tv_prox", "lipschitz", "pseudo_inverse"]

REGULARIZERS = ("haar", "dct", "tv")
DEFAULT_FRACS = (0.1, 0.03, 0.01, 0.003, 0.001)

Prox = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (v, threshold (B,1,1,1)) -> x


# ---------------------------------------------------------------- orthonormal transforms
def _haar_levels(h: int, w: int, levels: Optional[int]) -> int:
    most = 0
    while h % (2 ** (most + 1)) == 0 and w % (2 ** (most + 1)) == 0 and min(h, w) >> (most + 1) >= 2:
        most += 1
    return most if levels is None else min(levels, most)


def haar2(x: torch.Tensor, levels: Optional[int] = None) -> torch.Tensor:
    """Orthonormal multi-level 2-D Haar transform ``(B, C, H, W) -> (B, C, H, W)`` (Mallat layout:
    the approximation in the top-left ``H/2^L x W/2^L`` block). ``levels``: default as many as
    ``H`` and ``W`` allow (halving while both stay even and at least 2)."""
    out = x.clone()
    h, w = x.shape[-2:]
    for _ in range(_haar_levels(h, w, levels)):
        blk = out[..., :h, :w]
        a, b = blk[..., 0::2, :], blk[..., 1::2, :]
        rows = torch.cat([(a + b), (a - b)], dim=-2) / math.sqrt(2)
        a, b = rows[..., 0::2], rows[..., 1::2]
        out[..., :h, :w] = torch.cat([(a + b), (a - b)], dim=-1) / math.sqrt(2)
        h, w = h // 2, w // 2
    return out


def ihaar2(c: torch.Tensor, levels: Optional[int] = None) -> torch.Tensor:
    """The inverse (= adjoint) of :func:`haar2` with the same ``levels``."""
    out = c.clone()
    n = _haar_levels(*c.shape[-2:], levels)
    for k in reversed(range(n)):
        h, w = c.shape[-2] >> k, c.shape[-1] >> k
        blk = out[..., :h, :w]
        s, d = blk[..., : w // 2], blk[..., w // 2:]
        cols = torch.stack([(s + d), (s - d)], dim=-1).flatten(-2) / math.sqrt(2)
        s, d = cols[..., : h // 2, :], cols[..., h // 2:, :]
        out[..., :h, :w] = torch.stack([(s + d), (s - d)], dim=-2).flatten(-3, -2) / math.sqrt(2)
    return out


def _dct_matrix(n: int, ref: torch.Tensor) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``(n, n)``: row ``k`` is ``sqrt(2/n) cos(pi (2j+1) k / 2n)``."""
    j = torch.arange(n, dtype=torch.float64)
    mat = torch.cos(math.pi * (2 * j[None, :] + 1) * j[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    mat[0] /= math.sqrt(2.0)
    return mat.to(dtype=ref.dtype, device=ref.device)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II per channel, ``(B, C, H, W) -> (B, C, H, W)`` (DC term at ``[0, 0]``)."""
    return _dct_matrix(x.shape[-2], x) @ x @ _dct_matrix(x.shape[-1], x).T


def idct2(c: torch.Tensor) -> torch.Tensor:
    """The inverse (= adjoint) of :func:`dct2`."""
    return _dct_matrix(c.shape[-2], c).T @ c @ _dct_matrix(c.shape[-1], c)


# ---------------------------------------------------------------- proximal maps
def _soft(c: torch.Tensor, t: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Soft-threshold ``c`` by ``t`` except where ``free`` (unpenalized coefficients)."""
    shrunk = c.sign() * (c.abs() - t).clamp_min(0)
    return torch.where(free, c, shrunk)


def _grad(x: torch.Tensor) -> torch.Tensor:
    """Forward differences ``(B, C, H, W) -> (B, C, 2, H, W)``, zero across the last row/column."""
    dy = torch.zeros_like(x)
    dx = torch.zeros_like(x)
    dy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    dx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return torch.stack([dy, dx], dim=2)


def _grad_adjoint(p: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`_grad` (minus the divergence), ``(B, C, 2, H, W) -> (B, C, H, W)``."""
    py, px = p[:, :, 0], p[:, :, 1]
    out = torch.zeros_like(py)
    out[..., :-1, :] -= py[..., :-1, :]
    out[..., 1:, :] += py[..., :-1, :]
    out[..., :, :-1] -= px[..., :, :-1]
    out[..., :, 1:] += px[..., :, :-1]
    return out


def tv_prox(v: torch.Tensor, t: torch.Tensor, iters: int = 30, dual: Optional[torch.Tensor] = None,
            box: Tuple[float, float] = (0.0, 1.0)) -> Tuple[torch.Tensor, torch.Tensor]:
    """``argmin_x 1/2 |x - v|^2 + t TV(x)`` over ``box``, ``v`` ``(B, C, H, W)``, ``t`` ``(B, 1, 1, 1)``.

    Isotropic TV coupled over channels; fast gradient projection on the dual (``|p| <= 1`` per
    pixel over channels and both directions, step ``1/8 = 1/|grad|^2``). ``dual``: a warm start
    ``(B, C, 2, H, W)``. Returns ``(x, dual)``.
    """
    p = torch.zeros(*v.shape[:2], 2, *v.shape[2:], dtype=v.dtype, device=v.device) if dual is None else dual
    q, s = p, 1.0
    scale = t.unsqueeze(-1).clamp_min(1e-12)
    for _ in range(iters):
        x = (v - t * _grad_adjoint(q)).clamp(*box)
        p_new = q + _grad(x) / (8 * scale)
        p_new = p_new / p_new.square().sum(dim=(1, 2), keepdim=True).sqrt().clamp_min(1.0)
        s_new = (1 + math.sqrt(1 + 4 * s * s)) / 2
        q = p_new + ((s - 1) / s_new) * (p_new - p)
        p, s = p_new, s_new
    return (v - t * _grad_adjoint(p)).clamp(*box), p


# ---------------------------------------------------------------- FISTA
def _real(t: torch.Tensor) -> torch.Tensor:
    return t.real if t.is_complex() else t


def _residual_norm2(r: torch.Tensor) -> torch.Tensor:
    return r.abs().square().flatten(1).sum(1)


def lipschitz(op, shape: Sequence[int], *, ref: Optional[torch.Tensor] = None, seed: int = 0) -> float:
    """``|A|_2^2`` (the Lipschitz constant of the data-term gradient) by seeded power iteration,
    times 1.02 for safety; ``shape`` = ``(C, H, W)``."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(1, *shape, generator=gen, dtype=torch.float64)
    v = v.to(dtype=ref.dtype, device=ref.device) if ref is not None else v.float()
    return 1.02 * power_iteration(lambda u: _real(op.A_adjoint(op.A(u))), v, max_iter=100, tol=1e-4)


def _make_prox(regularizer: str, shape: Sequence[int], ref: torch.Tensor, tv_iters: int):
    """``(prox(v, t), penalized-coefficient transform)`` for a regularizer (state kept in closures)."""
    if regularizer == "tv":
        state = {}

        def prox(v, t):
            x, state["dual"] = tv_prox(v, t, iters=tv_iters, dual=state.get("dual"))
            return x
        return prox, None
    fwd, inv = (haar2, ihaar2) if regularizer == "haar" else (dct2, idct2)
    free = torch.zeros(1, 1, *shape[-2:], dtype=torch.bool, device=ref.device)
    if regularizer == "haar":
        n = _haar_levels(*shape[-2:], None)
        free[..., : shape[-2] >> n, : shape[-1] >> n] = True
    else:
        free[..., 0, 0] = True
    return (lambda v, t: inv(_soft(fwd(v), t, free))), (lambda x: torch.where(free, 0.0, fwd(x)))


def fista(y: torch.Tensor, op, x0: torch.Tensor, prox: Prox, lam: torch.Tensor, L: float, iters: int,
          weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``iters`` FISTA steps on ``1/2 |weight (A x - y)|^2 + lam R(x)`` from ``x0`` ``(B, C, H, W)``.

    ``prox(v, t)`` is the proximal map of ``t R`` with ``t`` ``(B, 1, 1, 1)``; ``lam`` ``(B,)``;
    ``L >= |A|^2``; ``weight``: 0/1 over the entries of ``y`` (default all 1). Returns ``x``.
    """
    t = (lam / L).view(-1, 1, 1, 1).to(x0)
    x, z, s = x0, x0, 1.0
    for _ in range(iters):
        r = op.A(z) - y
        g = op.A_adjoint(r if weight is None else r * weight)
        x_new = prox(z - _real(g) / L, t)
        s_new = (1 + math.sqrt(1 + 4 * s * s)) / 2
        z = x_new + ((s - 1) / s_new) * (x_new - x)
        x, s = x_new, s_new
    return x


# ---------------------------------------------------------------- the public entry points
def _check(y, op, shape, regularizer: str) -> Tuple[int, int, int]:
    if regularizer not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {regularizer!r}; choose one of {', '.join(REGULARIZERS)}")
    if not isinstance(y, torch.Tensor) or y.dim() < 2:
        raise TypeError(f"y must be a batched observation tensor (B, ...), got {type(y).__name__} "
                        f"{tuple(getattr(y, 'shape', ()))}")
    if not (hasattr(op, "A") and hasattr(op, "A_adjoint")):
        raise TypeError(f"op must be a linear operator with A and A_adjoint, got {type(op).__name__}")
    if len(shape) != 3 or any(int(d) != d or d < 1 for d in shape):
        raise ValueError(f"shape must be the image shape (C, H, W), got {tuple(shape)}")
    return tuple(int(d) for d in shape)


def _lam_max(y, op, regularizer: str, coeffs) -> torch.Tensor:
    """Per-sample ``(B,)`` top of the lambda grid: ``|W A^T y|_inf`` (``|A^T y|_inf`` for TV)."""
    back = _real(op.A_adjoint(y))
    top = (back if coeffs is None else coeffs(back)).abs().flatten(1).amax(1)
    return top.clamp_min(1e-12)


def _holdout_weight(y: torch.Tensor, holdout: float, seed: int) -> torch.Tensor:
    """A seeded 0/1 mask over the entries of one sample of ``y`` (0 = held out), at least one of each."""
    gen = torch.Generator().manual_seed(seed)
    keep = torch.rand(y.shape[1:], generator=gen) >= holdout
    flat = keep.view(-1)
    flat[0], flat[-1] = False, True
    return keep.to(device=y.device, dtype=y.real.dtype if y.is_complex() else y.dtype)


@torch.no_grad()
def choose_lambda(y: torch.Tensor, op, shape: Sequence[int], *, regularizer: str = "haar",
                  fracs: Sequence[float] = DEFAULT_FRACS, holdout: float = 0.1, iters_per_lam: int = 50,
                  tv_iters: int = 20, seed: int = 0, L: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-sample lambda by held-out residual: ``(lam (B,), x (B, C, H, W))``, ``x`` the warm start
    fitted (without the held-out entries) at the chosen lambda. See the module docstring.
    ``L``: ``|A|^2`` when known (else :func:`lipschitz`)."""
    shape = _check(y, op, shape, regularizer)
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout}")
    if not fracs or any(f <= 0 for f in fracs):
        raise ValueError(f"fracs must be positive fractions of lam_max, got {tuple(fracs)}")
    ref = y.real if y.is_complex() else y
    weight = _holdout_weight(y, holdout, seed)
    L = lipschitz(op, shape, ref=ref, seed=seed) if L is None else L
    prox, coeffs = _make_prox(regularizer, shape, ref, tv_iters)
    top = _lam_max(y * weight, op, regularizer, coeffs)
    x = torch.zeros(y.shape[0], *shape, dtype=ref.dtype, device=ref.device)
    best_err = torch.full((y.shape[0],), math.inf, dtype=ref.dtype, device=ref.device)
    best_lam, best_x = top.clone(), x.clone()
    for frac in sorted(fracs, reverse=True):
        x = fista(y, op, x, prox, top * frac, L, iters_per_lam, weight=weight)
        err = _residual_norm2((op.A(x) - y) * (1 - weight))
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_lam = torch.where(better, top * frac, best_lam)
        best_x[better] = x[better]
    return best_lam, best_x


@torch.no_grad()
def sparse_reconstruct(y: torch.Tensor, op, shape: Sequence[int], *, regularizer: str = "haar",
                       lam: Optional[float] = None, iters: int = 100, fracs: Sequence[float] = DEFAULT_FRACS,
                       holdout: float = 0.1, iters_per_lam: int = 50, tv_iters: int = 20,
                       seed: int = 0) -> torch.Tensor:
    """Sparse-prior reconstruction ``(B, C, H, W)`` in ``[0, 1]`` of observations ``y`` ``(B, ...)``.

    ``op``: any linear operator with ``A`` and ``A_adjoint`` (``operators`` objects, compositions,
    your own; a complex-valued ``A`` such as partial Fourier works too: residuals use ``|.|^2``
    and the real part of ``A^T``). ``shape``: the image shape ``(C, H, W)``. ``regularizer``: one
    of :data:`REGULARIZERS`. ``lam``: a fixed lambda for every sample (the data term is
    ``1/2 |A x - y|^2`` summed, not averaged); ``None`` chooses one per sample by held-out residual
    over ``fracs`` of ``lam_max`` (:func:`choose_lambda`, seeded by ``seed``). ``iters``: FISTA
    steps of the final solve on all entries. Cost: about ``iters + len(fracs) * iters_per_lam``
    applications of ``A`` and ``A^T`` (times ``tv_iters`` cheap gradient steps for TV).
    """
    shape = _check(y, op, shape, regularizer)
    ref = y.real if y.is_complex() else y
    L = lipschitz(op, shape, ref=ref, seed=seed)
    if lam is None:
        lams, x0 = choose_lambda(y, op, shape, regularizer=regularizer, fracs=fracs, holdout=holdout,
                                 iters_per_lam=iters_per_lam, tv_iters=tv_iters, seed=seed, L=L)
    else:
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        lams = torch.full((y.shape[0],), float(lam), dtype=ref.dtype, device=ref.device)
        x0 = torch.zeros(y.shape[0], *shape, dtype=ref.dtype, device=ref.device)
    prox, _ = _make_prox(regularizer, shape, ref, tv_iters)
    x = fista(y, op, x0, prox, lams, L, iters)
    return x.clamp(0, 1)


@torch.no_grad()
def pseudo_inverse(y: torch.Tensor, op, shape: Sequence[int]) -> torch.Tensor:
    """The minimum-norm least-squares answer ``A^+ y`` as ``(B, C, H, W)`` clamped to ``[0, 1]``."""
    return op.pinv(y).reshape(y.shape[0], *shape).clamp(0, 1)
