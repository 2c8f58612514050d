"""Data consistency: compose a prior's image with the observation, so the observed content is exact.

A prior's image ``x`` (e.g. ``G(z)``) fits the observation ``y = A x_true (+ noise)`` only up to
the prior's error. With the residual ``r = y - A x`` (``(B, *out)``):

* ``project``: ``x + A⁺ r``. The minimum-norm correction: it lies in the range of ``A*`` (it is
  orthogonal to the null space of ``A``), so the observed content comes from ``y`` exactly
  (``A(out) = y`` for an observation in the range of ``A``) and the prior's image is kept
  untouched in the null space (holes, lost high frequencies, lost colour).
* ``damped``: ``x + A*(A A* + λ I)⁻¹ r``, for noisy observations: the posterior mean of
  ``x_true ~ N(x, τ² I)``, ``y = A x_true + N(0, σ² I)`` with ``λ = σ² / τ²``. ``λ → 0`` gives
  ``project``, ``λ → ∞`` leaves ``x`` unchanged. :func:`noise_lambda` picks ``λ`` per sample by a
  rule (empirical Bayes: ``τ²`` estimated from the residual), not a tuned constant.

* ``smooth``: ``x + K A*(A K A* + λ I)⁻¹ r``: the same posterior mean with a *correlated* prior
  error ``e ~ N(0, τ² K)`` instead of a white one. ``K = C ⊗ (I + ℓ² (-Δ))^(-p)`` (Neumann boundary,
  applied by FFT of the mirrored image: :func:`smooth_covariance`) says the prior's error is a
  smooth field of correlation length ``ℓ`` pixels, as the error of a GAN's fit to a real photo
  is (a shifted tone, a misplaced feature, a wrong colour cast), not pixel noise; and, in an
  RGB image, one shared by the three channels (correlation ``SMOOTH_COLOUR`` = 0.9: mostly a
  wrong brightness), so a gray observation's correction goes on the luma and keeps the
  prior's chroma, with no colour cast. So the residual seen at observed entries is
  interpolated into the unobserved ones (kriging): around a hole the seam disappears, between
  the observed pixels of a sparse mask the correction is the smooth field through them (not
  the prior's values beside ``y``'s), and compressed sensing's correction is a smooth, mostly
  gray image instead of ``A⁺``'s noise-like one. ``A(out) = y`` is
  kept exactly (a final ``project`` pass removes CG's tolerance); ``λ`` as for ``damped``.

Closed forms where ``A A*`` is diagonal (no iterations): ``Mask`` (``A A* = M``), box
``Downsample`` (``I / f²``), ``Grayscale`` (``|w|² I``), SRHT compressed sensing when ``C*H*W`` is
a power of two (``(n_pad / m) I``), and compositions ``A_k ... A_1`` whose inner operators all
have scalar ``A A*`` (then ``A A* = c_1 ... c_{k-1} A_k A_k*``), e.g. ``Mask @ Grayscale``.
Otherwise conjugate gradients: ``project`` uses the operator's ``pinv`` (CGLS, the minimum-norm
least-squares solution, robust to observations outside the range), ``damped`` solves
``(A A* + λ I) u = r`` per sample in observation space and returns ``A* u``. Only ``A`` and ``A*``
are applied; no matrix is formed. Every sample is solved independently (per-sample masks too).

Shapes: ``x`` ``(B, C, H, W)``, ``y`` ``(B, *out)`` as ``operator`` outputs it; out ``(B, C, H, W)``
in ``x``'s dtype. Not differentiable (run under ``no_grad``).

Example::

    >>> import torch
    >>> from operators import Downsample
    >>> A = Downsample(4)
    >>> y = A(torch.rand(1, 3, 32, 32))
    >>> out = apply_consistency(torch.rand(1, 3, 32, 32), y, A, mode="project")
    >>> bool((A(out) - y).abs().max() < 1e-5)
    True
"""
from __future__ import annotations

import functools
import math
import numbers
import warnings
from typing import Callable, Optional, Union

import torch

from operators import CompressedSensing, ComposedOperator, Downsample, Grayscale, LinearOperator, Mask

__all__ = ["project", "damped", "smooth", "smooth_covariance", "noise_lambda", "apply_consistency",
           "diagonal_gram", "MODES", "SMOOTH_LENGTH", "SMOOTH_POWER", "SMOOTH_COLOUR"]

MODES = ("project", "damped", "smooth", "none")
SMOOTH_LENGTH = 1 / 16  # correlation length of ``smooth``'s prior error, as a fraction of the image side
SMOOTH_POWER = 2  # p of K = (I + l^2 (-Laplacian))^(-p): 2 is a Matern-like (biharmonic) field
SMOOTH_NUGGET = 0.03  # smooth's least lambda for a Mask, relative to the mean diagonal of A K A* (see smooth)
SMOOTH_COLOUR = 0.9  # correlation of the prior error between the R, G and B channels (see smooth_covariance)
Lam = Union[float, torch.Tensor]


# ----------------------------------------------------------------------------- structure of A A*
def diagonal_gram(operator) -> Optional[Union[float, torch.Tensor]]:
    """``A A*`` as a diagonal: a float ``c`` (``A A* = c I``), a tensor broadcasting against the
    observation (a ``Mask``'s 0/1 mask, per sample when the mask is), or ``None`` when it is not
    known to be diagonal (then the solvers iterate)."""
    if isinstance(operator, Mask):
        return operator.mask
    if isinstance(operator, Downsample) and operator.kernel == "box":
        return 1.0 / operator.factor ** 2
    if isinstance(operator, Grayscale):
        return float((operator.weights.double() ** 2).sum())
    if isinstance(operator, CompressedSensing) and operator.kind == "srht" and operator.n == operator.n_pad:
        return operator.n_pad / operator.m
    if isinstance(operator, ComposedOperator):
        scale = 1.0
        for inner in operator.ops[:-1]:
            g = diagonal_gram(inner)
            if not isinstance(g, float):
                return None
            scale *= g
        outer = diagonal_gram(operator.ops[-1])
        return None if outer is None else outer * scale
    return None


# ----------------------------------------------------------------------------- maps and checks
def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1)


def _adjoint_of(operator: Callable, x: torch.Tensor) -> Callable:
    """``A*`` of a linear callable, by autograd (the vector-Jacobian product of a linear map)."""
    if isinstance(operator, LinearOperator):
        return operator.A_adjoint

    def adjoint(v: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            z = torch.zeros_like(x, requires_grad=True)
            (g,) = torch.autograd.grad(operator(z), z, v)
        return g
    return adjoint


def _check_linear(operator: Callable, x: torch.Tensor, ax: torch.Tensor) -> None:
    """``ValueError`` unless a plain callable looks linear: ``A(0) = 0`` and ``A(2x) = 2 A(x)``."""
    if isinstance(operator, LinearOperator):
        return
    zero, double = operator(torch.zeros_like(x)), operator(2 * x)
    scale = float(ax.abs().max()) or 1.0
    if float(zero.abs().max()) > 1e-5 * scale or float((double - 2 * ax).abs().max()) > 1e-4 * scale:
        raise ValueError(f"data consistency needs a linear operator; {type(operator).__name__} is not "
                         f"(A(0) != 0 or A(2x) != 2 A(x)); use mode='none'")


def _check_inputs(x, y, operator) -> torch.Tensor:
    """Type, shape and finiteness checks; returns ``A x``."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a float tensor, got {got}")
    if x.dim() != 4:
        raise ValueError(f"x must be an image batch (B, C, H, W), got {tuple(x.shape)}")
    ax = operator(x)
    if tuple(ax.shape) != tuple(y.shape):
        raise ValueError(f"y has shape {tuple(y.shape)} but the operator maps x {tuple(x.shape)} to "
                         f"{tuple(ax.shape)}")
    if not bool(torch.isfinite(y).all()):
        raise ValueError("y must be finite (mask missing entries with the operator instead)")
    return ax


def _default_tol(dtype: torch.dtype) -> float:
    return 1e-12 if dtype == torch.float64 else 1e-6


# ----------------------------------------------------------------------------- solvers
def _cg(apply: Callable, b: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Per-sample conjugate gradients for the SPD system ``apply(u) = b``, ``b`` ``(B, ...)``;
    a sample stops when ``|b - apply(u)| <= tol |b|``."""
    tiny = torch.finfo(b.dtype).tiny  # 1e-300 is 0 in float32
    u, res = torch.zeros_like(b), b.clone()
    p, rs = res.clone(), _dot(res, res)
    stop = tol ** 2 * rs
    done = rs <= stop
    for _ in range(max_iter):
        if bool(done.all()):
            break
        q = apply(p)
        alpha = torch.where(done, torch.zeros_like(rs), rs / _dot(p, q).clamp_min(tiny))
        u = u + _per_sample(alpha, u) * p
        res = res - _per_sample(alpha, res) * q
        rs_new = _dot(res, res)
        p = res + _per_sample(rs_new / rs.clamp_min(tiny), p) * p
        rs = rs_new
        done = done | (rs <= stop)
    if not bool(done.all()):
        worst = float((rs / stop.clamp_min(tiny)).max().sqrt()) * tol
        warnings.warn(f"consistency: conjugate gradient stopped after {max_iter} iterations with relative "
                      f"residual {worst:.2e} > tol={tol:.1e}; raise max_iter", RuntimeWarning, stacklevel=4)
    return u


def _lam_tensor(lam: Lam, r: torch.Tensor) -> torch.Tensor:
    """``λ`` as ``(B, 1, ...)`` broadcasting against ``r``; ``ValueError`` unless all are >= 0."""
    t = torch.as_tensor(lam, dtype=r.dtype, device=r.device)
    if t.dim() > 1 or (t.dim() == 1 and t.numel() not in (1, r.shape[0])):
        raise ValueError(f"lam must be a number or one value per sample ({r.shape[0]}), got shape {tuple(t.shape)}")
    if bool(torch.isnan(t).any()) or bool((t < 0).any()):
        raise ValueError(f"lam must be >= 0 (inf allowed), got {t.tolist()}")
    return _per_sample(t.expand(r.shape[0]), r)


def _correction(r: torch.Tensor, operator, At: Callable, lam: torch.Tensor, tol: float, max_iter: int):
    """``A*(A A* + λ I)⁺ r`` per sample; ``λ`` ``(B, 1, ...)``: 0 gives the pseudo-inverse, inf 0."""
    d = diagonal_gram(operator)
    if d is None and bool((lam == 0).all()) and isinstance(operator, LinearOperator):
        return operator.pinv(r, tol=tol, max_iter=max_iter)  # CGLS: robust to r outside the range
    inf = torch.isinf(lam)
    lam = torch.where(inf, torch.zeros_like(lam), lam)
    if d is not None:
        total = torch.as_tensor(d, dtype=r.dtype, device=r.device) + lam
        u = torch.where(total > 0, r / total.clamp_min(1e-300), torch.zeros_like(r))
    else:
        r = torch.where(inf, torch.zeros_like(r), r)  # those samples keep x: nothing to solve
        u = _cg(lambda v: operator(At(v)) + lam * v, r, tol, max_iter)
    return At(torch.where(inf, torch.zeros_like(u), u))


# ----------------------------------------------------------------------------- public functions
@torch.no_grad()
def _run(x, y, operator, lam, tol, max_iter, passes) -> torch.Tensor:
    """``passes`` rounds of ``x <- x + A*(A A* + λ I)⁺ (y - A x)``. For the projection (``λ = 0``)
    a second round removes the rounding and CG tolerance left by the first (iterative
    refinement: the correction is idempotent); ``damped`` has one round (``passes=1``)."""
    ax = _check_inputs(x, y, operator)
    _check_linear(operator, x, ax)
    At = _adjoint_of(operator, x)
    tol = _default_tol(x.dtype) if tol is None else float(tol)
    for k in range(passes):
        r = y.to(ax) - (ax if k == 0 else operator(x))
        x = x + _correction(r, operator, At, _lam_tensor(lam, r), tol, max_iter)
    return x


def _passes(operator) -> int:
    return 1 if diagonal_gram(operator) is not None else 2


def project(x: torch.Tensor, y: torch.Tensor, operator, *, tol: Optional[float] = None,
            max_iter: int = 500) -> torch.Tensor:
    """``x + A⁺(y - A x)``: ``(B, C, H, W)``; ``A(out) = y`` for ``y`` in the range of ``A``.

    ``operator``: an ``operators.LinearOperator`` or any linear callable (its adjoint then comes
    from autograd). ``tol``: relative CG tolerance (default ``1e-6`` in float32, ``1e-12`` in
    float64); ``max_iter`` per CG solve. Closed form where ``A A*`` is diagonal (see the module).
    """
    return _run(x, y, operator, 0.0, tol, max_iter, _passes(operator))


def damped(x: torch.Tensor, y: torch.Tensor, operator, lam: Lam, *, tol: Optional[float] = None,
           max_iter: int = 500) -> torch.Tensor:
    """``x + A*(A A* + λ I)⁻¹(y - A x)``: ``(B, C, H, W)``, for observations with noise.

    ``lam``: ``λ >= 0``, a number or ``(B,)`` (one per sample; ``inf`` keeps that sample's ``x``);
    :func:`noise_lambda` computes it from the noise level. ``λ = 0`` is :func:`project`.
    """
    return _run(x, y, operator, lam, tol, max_iter, 1)


@torch.no_grad()
def noise_lambda(x: torch.Tensor, y: torch.Tensor, operator, sigma, *, probes: int = 8,
                 seed: int = 0, root: Optional[Callable] = None) -> torch.Tensor:
    """``λ = σ² / τ̂²`` per sample ``(B,)``: the rule behind :func:`damped` (empirical Bayes).
    ``sigma``: a float, or ``(B,)`` one noise std per sample.

    Model: ``x_true = x + e`` with white prior error ``e ~ N(0, τ² I)`` and white noise of std
    ``sigma`` on every observed entry. Then ``E |r|² = τ² tr(A A*) + m σ²`` for the residual
    ``r = y - A x`` over the ``m`` observed entries, so ``τ̂² = max(|r|² - m σ², 0) / tr(A A*)``,
    and ``λ = σ² / τ̂²`` makes :func:`damped` the posterior mean (the MSE-optimal blend, e.g. for a
    Mask ``(λ x + y) / (1 + λ)`` on observed pixels). ``inf`` when the residual is all noise
    (``x`` is kept), ``0`` when ``sigma == 0`` (projection). Observed entries are those where
    ``A A*`` is positive for a diagonal gram (a Mask's holes are ignored, noisy or not), else all;
    ``tr(A A*)`` is exact for a diagonal gram, else Hutchinson's estimate ``mean |A v|²`` over
    ``probes`` seeded Rademacher images ``v``. ``root``: for a correlated prior error
    ``e ~ N(0, τ² K)`` (:func:`smooth`), the map ``v -> K^½ v``; then ``tr(A K A*)`` replaces
    ``tr(A A*)`` (Hutchinson's estimate ``mean |A K^½ v|²``).
    """
    if isinstance(sigma, torch.Tensor):  # one noise std per sample (B,)
        if sigma.shape != (x.shape[0],) or not bool(torch.isfinite(sigma).all() and (sigma >= 0).all()):
            raise ValueError(f"sigma as a tensor must hold one finite std >= 0 per sample ({x.shape[0]},), "
                             f"got {tuple(sigma.shape)}")
        sigma = sigma.detach().double().to(x.device)
    elif isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0 (the noise std of y), got {sigma!r}")
    ax = _check_inputs(x, y, operator)
    r = (y.to(ax) - ax).double()
    d = diagonal_gram(operator)
    if d is not None:
        g = torch.as_tensor(d, dtype=r.dtype, device=r.device).expand_as(r)
        info = g > 0
        trace, energy, m = g.flatten(1).sum(1), (r.square() * info).flatten(1).sum(1), info.flatten(1).sum(1)
    else:
        trace = None
        energy = r.square().flatten(1).sum(1)
        m = torch.full_like(energy, r[0].numel())
    if root is not None:  # correlated prior error: tr(A K A*) = E |A K^1/2 v|^2
        trace = _hutchinson_trace(lambda v: operator(root(v)), x, probes, seed)
    elif trace is None:
        trace = _hutchinson_trace(operator, x, probes, seed)
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=trace.device).expand_as(trace)
    tau2 = (energy - m * sigma ** 2).clamp_min(0) / trace.clamp_min(1e-300)
    lam = torch.where(tau2 > 0, sigma ** 2 / tau2.clamp_min(1e-300), torch.full_like(tau2, math.inf))
    lam = torch.where(sigma == 0, torch.zeros_like(lam), lam)
    return lam.to(x.dtype)


def _hutchinson_trace(operator, x: torch.Tensor, probes: int, seed: int) -> torch.Tensor:
    """``tr(A* A)`` per sample ``(B,)`` (float64) as the mean of ``|A v|²`` over Rademacher ``v``."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for _ in range(probes):
        v = torch.randint(0, 2, (1, *x.shape[1:]), generator=gen).to(x) * 2 - 1
        v = v.expand_as(x)  # every row the same probes: a sample's estimate does not depend on its batch
        total += operator(v).double().square().flatten(1).sum(1)
    return total / probes


# ----------------------------------------------------------------------------- smooth correction
def smooth_covariance(v: torch.Tensor, length: float, power: float = SMOOTH_POWER,
                      colour: float = SMOOTH_COLOUR, root: bool = False) -> torch.Tensor:
    """``K v`` for images ``v`` ``(B, C, H, W)``, ``K = C_colour ⊗ (I + length² (-Δ))^(-power)``.

    Space: ``Δ`` is the 5-point Laplacian with Neumann (reflecting) boundaries, diagonalised by
    the FFT of the image mirrored to ``(2H, 2W)`` (eigenvalues ``4 sin²(π k / 2H) + 4 sin²(π l /
    2W)``): a low-pass filter of cut-off about ``1 / length`` cycles per pixel.

    Colour (3-channel images only; other channel counts are filtered channel by channel): the
    channels' errors correlate at ``colour`` (``ρ``): ``C_colour`` has eigenvalue 1 on gray
    ``(1, 1, 1)`` and ``κ = (1 - ρ) / (1 + 2ρ)`` on the two chroma directions (the correlation
    matrix ``(1 - ρ) I + ρ 11ᵀ``, scaled). A GAN's error on a real photo is mostly a wrong
    brightness or shading, shared by R, G and B (measured on the benchmark's dev photos: channel
    correlations 0.8-0.96), so a correction that ``y`` leaves free to choose (a gray
    observation's chroma, compressed sensing's mixed channels) is put on gray: colorization keeps
    the prior's chroma and corrects its luma (no green or magenta cast where ``w``-weighted
    minimum-norm corrections would add one), and compressed sensing's correction is not split
    into colour noise. ``colour=0`` filters each channel alone.

    ``K`` is symmetric positive definite with eigenvalues in ``(0, 1]`` (1 for a constant gray
    image). ``root=True`` applies ``K^½`` instead (both factors at half their power). Same shape out.
    """
    if not 0 <= colour < 1:
        raise ValueError(f"colour (the channels' correlation) must be in [0, 1), got {colour!r}")
    h, w = v.shape[-2:]
    ext = torch.cat([v, v.flip(-1)], -1)
    ext = torch.cat([ext, ext.flip(-2)], -2)
    half = 0.5 if root else 1.0
    symbol = _symbol(h, w, float(length), float(power) * half, v.device,
                     torch.float64 if v.dtype == torch.float64 else torch.float32)
    out = torch.fft.irfft2(torch.fft.rfft2(ext) * symbol, s=(2 * h, 2 * w))[..., :h, :w].to(v.dtype)
    if v.shape[-3] == 3 and colour > 0:
        gray = out.mean(-3, keepdim=True)
        out = gray + ((1 - colour) / (1 + 2 * colour)) ** half * (out - gray)
    return out


@functools.lru_cache(maxsize=32)
def _symbol(h: int, w: int, length: float, power: float, device, dtype) -> torch.Tensor:
    """``(2h, w + 1)`` eigenvalues of :func:`smooth_covariance`'s ``K`` on the rfft grid."""
    ky = torch.arange(2 * h, device=device, dtype=torch.float64)
    kx = torch.arange(w + 1, device=device, dtype=torch.float64)
    lap = 4 * torch.sin(math.pi * ky / (2 * h))[:, None] ** 2 + 4 * torch.sin(math.pi * kx / (2 * w))[None] ** 2
    return ((1 + length ** 2 * lap) ** (-power)).to(dtype)


@torch.no_grad()
def smooth(x: torch.Tensor, y: torch.Tensor, operator, *, lam: Lam = 0.0, length: Optional[float] = None,
           power: int = SMOOTH_POWER, colour: float = SMOOTH_COLOUR, nugget: Optional[float] = None,
           tol: float = 1e-4, max_iter: int = 150) -> torch.Tensor:
    """``x + K A*(A K A* + λ I)⁻¹ (y - A x)``: ``(B, C, H, W)``, the residual interpolated by a
    smooth field (see the module; ``K``: :func:`smooth_covariance`).

    ``length``: the correlation length in pixels (default ``SMOOTH_LENGTH`` times the image's
    shorter side); ``colour``: the channels' error correlation (RGB images; see
    :func:`smooth_covariance`); ``lam``: ``λ >= 0`` as for :func:`damped` (a number or ``(B,)``; 0 for
    noise-free ``y``: then a final :func:`project` pass makes ``A(out) = y`` to float precision).
    ``nugget``: ``λ`` is at least ``nugget`` times the mean diagonal of ``A K A*`` (Hutchinson's
    estimate), so the field through the observed entries is a smoothing, not an interpolation,
    of the residual: neighbouring observed pixels are so correlated under ``K`` that their noise
    would be amplified between them. Default (None): ``SMOOTH_NUGGET`` = 0.03 for a ``Mask``
    (dev photos, 80% missing pixels: +1.4 dB at noise std 0.02, +0.2 dB noise-free), 0 for
    other operators (a nugget costs compressed sensing 0.1-0.8 dB). A noise-free solve keeps
    ``A(out) = y`` anyway (the final projection). Entries a diagonal-gram operator does not
    observe (a Mask's holes) carry no residual, whatever ``y`` holds there.
    ``tol``, ``max_iter``: the per-sample CG on ``(A K A* + λ I) u = r`` (a loose ``tol`` suffices:
    the projection removes what is left; on the benchmark's compressed sensing, m = 2000 of
    12288, the image stops changing after about 150 iterations: 33.10 / 33.21 / 33.21 dB after
    100 / 150 / 300).
    """
    ax = _check_inputs(x, y, operator)
    _check_linear(operator, x, ax)
    At = _adjoint_of(operator, x)
    length = SMOOTH_LENGTH * min(x.shape[-2:]) if length is None else float(length)
    if not length > 0 or not math.isfinite(length):
        raise ValueError(f"length must be a positive number of pixels, got {length!r}")
    r = y.to(ax) - ax
    d = diagonal_gram(operator)
    if d is not None:  # entries A does not observe (a Mask's holes, noisy or not) carry no residual
        r = torch.where(torch.as_tensor(d, device=r.device).expand_as(r) > 0, r, torch.zeros_like(r))
    lam_t = _lam_tensor(lam, r)
    inf = torch.isinf(lam_t)
    lam_t = torch.where(inf, torch.zeros_like(lam_t), lam_t)
    r = torch.where(inf, torch.zeros_like(r), r)
    K = lambda v: smooth_covariance(v, length, power, colour)  # noqa: E731
    nugget = (SMOOTH_NUGGET if isinstance(operator, Mask) else 0.0) if nugget is None else float(nugget)
    if nugget > 0:  # lam >= nugget * (mean diagonal of A K A*): the field need not pass through every entry
        m = float(r[0].numel())
        scale = _hutchinson_trace(lambda v: operator(smooth_covariance(v, length, power, colour, root=True)),
                                  x, 4, 0).to(r) / m
        lam_t = torch.maximum(lam_t, nugget * _per_sample(scale, r))
    with warnings.catch_warnings():  # a loose CG; the projection below finishes the job
        warnings.simplefilter("ignore", RuntimeWarning)
        u = _cg(lambda v: operator(K(At(v))) + lam_t * v, r, tol, max_iter)
    out = x + K(At(u))
    if bool((torch.as_tensor(lam) == 0).all()):
        out = project(out, y, operator)
    return out


def smooth_lambda(x: torch.Tensor, y: torch.Tensor, operator, sigma, *, length: Optional[float] = None,
                  power: int = SMOOTH_POWER, colour: float = SMOOTH_COLOUR, probes: int = 8,
                  seed: int = 0) -> torch.Tensor:
    """``λ = σ² / τ̂²`` per sample ``(B,)`` for :func:`smooth`: :func:`noise_lambda`'s rule with
    the correlated prior error ``e ~ N(0, τ² K)``, so ``E |r|² = τ² tr(A K A*) + m σ²``
    (``K^½``: :func:`smooth_covariance` with ``root=True``)."""
    length = SMOOTH_LENGTH * min(x.shape[-2:]) if length is None else float(length)
    return noise_lambda(x, y, operator, sigma, probes=probes, seed=seed,
                        root=lambda v: smooth_covariance(v, length, power, colour, root=True))


def apply_consistency(x: torch.Tensor, y: torch.Tensor, operator, mode: str = "project", *,
                      sigma: Optional[float] = None, lam: Optional[Lam] = None, clamp: bool = False,
                      tol: Optional[float] = None, max_iter: int = 500) -> torch.Tensor:
    """Make the prior's image ``x`` ``(B, C, H, W)`` consistent with ``y`` ``(B, *out)``; same shape out.

    ``mode``: ``"project"`` (:func:`project`, noise-free observations), ``"damped"``
    (:func:`damped` with ``lam``, or with ``λ`` from ``sigma`` by :func:`noise_lambda`; one of the
    two is required) or ``"none"`` (``x`` as it is). ``clamp``: clip the result to ``[0, 1]``.
    Clipping keeps ``A(out) = y`` exactly only where the correction stayed in range: for a Mask
    with ``y`` in ``[0, 1]`` always (observed pixels are set to ``y``, holes keep ``x``), for
    other operators only approximately (a super-resolved edge or a colour pushed past 1 is cut),
    so measure consistency before clipping and image quality after.
    """
    if mode not in MODES:
        raise ValueError(f"consistency mode must be one of {MODES}, got {mode!r}")
    if mode == "none":
        out = x
    elif mode == "project":
        out = project(x, y, operator, tol=tol, max_iter=max_iter)
    elif mode == "smooth":
        noisy = sigma is not None and bool((torch.as_tensor(sigma) > 0).any())
        lam = (smooth_lambda(x, y, operator, sigma) if noisy else 0.0) if lam is None else lam
        out = smooth(x, y, operator, lam=lam)
    else:
        if lam is None and sigma is None:
            raise ValueError("mode='damped' needs sigma (the noise std of y) or lam")
        lam = noise_lambda(x, y, operator, sigma) if lam is None else lam
        out = damped(x, y, operator, lam, tol=tol, max_iter=max_iter)
    return out.clamp(0, 1) if clamp else out
