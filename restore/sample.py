"""``restore.sample``: posterior samples of the image behind noisy observations, and their spread.

For Gaussian noise of std ``sigma`` on ``y = A(x) + sigma * eps`` and a GAN prior ``x = G(z)``,
``z ~ N(0, I)``, the posterior over the latent is

    log p(z | y) = -|A(G(z)) - y|^2 / (2 sigma^2) - |z|^2 / 2 + const.

Two strategies draw ``n`` samples per observation, all ``n * B`` of them in one batch:

* ``"langevin"`` (Jalal et al. 2021, Langevin dynamics on the latent): a MAP-style solve
  (``restore.solve(method="latent")``) gives ``z0``; the Laplace approximation there, precision
  ``H = J^T J / sigma^2 + I`` with ``J = d A(G(z)) / dz`` at ``z0``, preconditions the chains, which
  start from draws of that Gaussian and take Metropolis-adjusted Langevin steps
  ``z' = z + (h/2) H^-1 grad log p(z) + sqrt(h) H^-1/2 eps`` (MALA with a fixed preconditioner:
  exact in the limit of many steps whatever ``h``). The step ``h`` starts at the optimal-scaling
  rule ``1.65^2 d^(-1/3)`` (Roberts and Rosenthal 1998, for a well-preconditioned ``d``-dimensional
  target) and, during the first half of the steps, adapts per observation towards the optimal
  acceptance rate 0.574; the second half runs at the adapted ``h``. No per-problem tuning.
  Needs a single Gaussian latent (``space="z"``) of at most ``max_dim`` entries.
* ``"ensemble"`` (randomize-then-optimize): ``n`` independent solves of the perturbed observations
  ``y + sigma * eps_i``, any ``method``. Only the likelihood is perturbed (the solve has no
  Gaussian prior term), so the spread is the maximum-likelihood estimate's sampling spread: close
  to the posterior's when the data outweigh the prior (``m`` well above the latent size), wider
  where they do not. It costs about ``n`` solves.

Example::

    >>> import torch
    >>> from torch import nn
    >>> import priors, restore
    >>> from operators import CompressedSensing
    >>> G = priors.wrap(nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4))), (4,))
    >>> op = CompressedSensing(12, (1, 4, 4), seed=0)
    >>> y = op(G(G.sample_latents(2, seed=1))) + 0.01 * torch.randn(2, 12, generator=torch.Generator().manual_seed(2))
    >>> s = restore.sample(y, op, G, n=8, sigma=0.01, seed=0, steps=20, solve_steps=60)
    >>> s.samples.shape, s.mean.shape, s.std.shape, s.fit.shape
    (torch.Size([8, 2, 1, 4, 4]), torch.Size([2, 1, 4, 4]), torch.Size([2, 1, 4, 4]), torch.Size([8, 2]))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Callable, Optional

import torch

from .refine import _jacobian
from .solve import Result, solve

__all__ = ["sample", "Samples", "STRATEGIES"]

STRATEGIES = ("langevin", "ensemble")
_MODE_ITERS = 20  # Gauss-Newton steps from the solve's code towards the posterior mode, at most
_MODE_TOL = 1e-3  # a sample is at its mode once a step gains less than this (nats) in log p(z | y)
TARGET_ACCEPTANCE = 0.574  # optimal MALA acceptance rate (Roberts and Rosenthal 1998)


@dataclass
class Samples:
    """The outcome of :func:`sample`.

    samples: ``(n, B, C, H, W)`` in ``[0, 1]``, ``n`` posterior samples per observation.
    mean, std: ``(B, C, H, W)`` their per-pixel mean and standard deviation (``std`` with
        Bessel's correction; zeros when ``n == 1``).
    fit: ``(n, B)`` each sample's data fit, the mean squared residual ``mean((A(x) - y)^2)``
        (about ``sigma^2`` for a sample consistent with the noise).
    options: what ran: ``strategy``, ``n``, ``sigma``, ``m`` (measurements per observation),
        ``seed``, ``steps``, ``step_size`` (the adapted Langevin step per observation, ``(B,)`` as
        a list) and the solve's options.
    solve: the :class:`restore.Result` of the MAP-style solve (Langevin) or of the ensemble's
        batched solve (its batch is ``n * B``, sample ``i`` of observation ``b`` at row ``i * B + b``).
    acceptance: Langevin only: ``(B,)`` the fraction of accepted steps after adaptation; else None.
    """

    samples: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    fit: torch.Tensor
    options: dict
    solve: Result
    acceptance: Optional[torch.Tensor] = None

    def consistent(self, k: float = 4.0) -> torch.Tensor:
        """``(B,)`` bool: whether each observation's samples fit ``y`` as noise of std ``sigma``
        would: mean ``fit`` below ``sigma^2 (1 + k sqrt(2 / m))`` for ``m`` measurements (a
        ``k``-sigma chi-square bound). False flags a wrong basin of the latent space (the chains
        explore only the basin the solve found): do not trust that observation's error bars.
        Ensemble members fit ``y + sigma * eps_i``, so their fit to ``y`` is held to twice that."""
        m, sigma = self.options["m"], self.options["sigma"]
        expected = sigma ** 2 * (2 if self.options["strategy"] == "ensemble" else 1)
        return self.fit.mean(0) < expected * (1 + k * math.sqrt(2 / m))


class _Tiled:
    """A (possibly per-sample) operator applied to ``(k * B, ...)`` images, ``B`` rows at a time."""

    def __init__(self, operator: Callable, batch: int):
        self.operator, self.batch = operator, batch
        self.per_sample = getattr(operator, "batch_size", None) is not None
        self.batch_size = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.per_sample:
            return self.operator(x)
        return torch.cat([self.operator(part) for part in x.split(self.batch)])


# ----------------------------------------------------------------------------- checks
def _check(y, prior, n, sigma, strategy, method, steps, max_dim) -> None:
    """Raise ``ValueError`` (before any work) unless the sampling arguments make sense."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (samples per observation) must be an int >= 1, got {n!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, Real) or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma (the noise std of y) must be a finite number > 0, got {sigma!r}: "
                         f"without noise the posterior is a point (use restore.solve)")
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() < 2:
        raise ValueError(f"y must be a float tensor (B, ...), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if strategy == "langevin":
        if method != "latent":
            raise ValueError(f"strategy='langevin' samples one Gaussian latent per image: method must be "
                             f"'latent', got {method!r} (use strategy='ensemble' for mgan or dgp)")
        d = math.prod(prior.latent_shape)
        if d > max_dim:
            raise ValueError(f"strategy='langevin' needs the Jacobian of a latent of at most max_dim={max_dim} "
                             f"entries, the prior's has {d}: raise max_dim or use strategy='ensemble'")


def _check_start(start, strategy, prior, batch) -> None:
    """Raise ``ValueError`` unless ``start`` is None or a latent solve of ``batch`` observations."""
    if start is None:
        return
    if strategy != "langevin":
        raise ValueError(f"start (a solve to begin from) serves strategy='langevin' only, got {strategy!r}")
    z = getattr(start, "latents", {}).get("z") if isinstance(getattr(start, "latents", None), dict) else None
    want = (batch, *prior.latent_shape)
    if not isinstance(z, torch.Tensor) or tuple(z.shape) != want:
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(start).__name__
        raise ValueError(f"start must be a restore.solve Result of method='latent' with latents['z'] {want}, "
                         f"got {got}")


def _draw(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(device=like.device)


def _summary(images: torch.Tensor, y: torch.Tensor, operator: _Tiled):
    """``mean``, ``std`` over the first axis of ``images (n, B, C, H, W)`` and the fit ``(n, B)``."""
    n, B = images.shape[:2]
    mean = images.mean(0)
    std = images.std(0) if n > 1 else torch.zeros_like(mean)
    with torch.no_grad():
        res = operator(images.flatten(0, 1)).flatten(1) - y.flatten(1).repeat(n, 1)
    return mean, std, res.square().mean(1).view(n, B)


# ----------------------------------------------------------------------------- strategies
def _ensemble(y, operator, prior, n, sigma, gen, seed, method, progress, solve_options):
    """``n`` solves of ``y + sigma * eps_i`` in one batch of ``n * B``; returns images, the result."""
    B = y.shape[0]
    if method in ("latent", "mgan"):  # the perturbed copies hold noise of variance 2 sigma^2
        solve_options = {"sigma": sigma * 2 ** 0.5, **solve_options}
    solve_options = {"average": 1, **solve_options}  # each member is one solution, not a mean of several
    noisy = y.detach().repeat(n, *([1] * (y.dim() - 1)))
    noisy = noisy + (sigma * _draw(noisy.shape, gen, y)).to(y.dtype)
    res = solve(noisy, _Tiled(operator, B), prior, method=method, seed=seed, progress=progress, **solve_options)
    return res.image.view(n, B, *res.image.shape[1:]), res


class _Posterior:
    """``log p(z | y)`` and its gradient for ``(n * B)`` chains, flattened latents ``(n*B, d)``."""

    def __init__(self, G, y, operator, sigma, n):
        self.G, self.op, self.sigma = G, _Tiled(operator, y.shape[0]), sigma
        self.yf = y.detach().flatten(1).repeat(n, 1)

    def __call__(self, z: torch.Tensor):
        z = z.detach().float().requires_grad_(True)
        ax = self.op(self.G(z.view(-1, *self.G.latent_shape))).flatten(1)
        logp = -(ax - self.yf).square().sum(1) / (2 * self.sigma ** 2) - z.square().sum(1) / 2
        (grad,) = torch.autograd.grad(logp.sum(), z)
        return logp.detach().double(), grad.double()


def _precision(G, z, operator, sigma, chunk=25):
    """The Laplace precision ``J^T J / sigma^2 + I`` ``(B, d, d)`` at ``z (B, d)`` (float64)."""
    f = lambda zz: operator(G(zz.view(-1, *G.latent_shape))).flatten(1)  # noqa: E731
    with torch.no_grad():
        J = _jacobian(f, z.float(), chunk).double()
    eye = torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
    return J.transpose(1, 2) @ J / sigma ** 2 + eye


def _mode(post, G, z, operator, sigma, iters):
    """Damped Gauss-Newton ascent of ``log p(z | y)`` from ``z (B, d)`` (the solve fits the data
    only, so its code may lie far out in the prior's tails); returns the code and its precision."""
    logp, g = post(z)
    lam = torch.full_like(logp, 1e-2)
    done = torch.zeros_like(logp, dtype=torch.bool)
    H = _precision(G, z, operator, sigma)
    for _ in range(iters):
        damped = H + lam[:, None, None] * torch.diag_embed(torch.diagonal(H, dim1=1, dim2=2))
        cand = z + torch.linalg.solve(damped, g[..., None])[..., 0]
        logp_c, g_c = post(cand)
        ok = torch.isfinite(logp_c) & (logp_c > logp) & ~done
        done |= (ok & (logp_c - logp < _MODE_TOL)) | (lam >= 1e6)
        z, logp, g = torch.where(ok[:, None], cand, z), torch.where(ok, logp_c, logp), torch.where(ok[:, None], g_c, g)
        lam = torch.where(ok, lam / 3, lam * 4).clamp(1e-8, 1e8)
        if bool(done.all()):
            break
        if bool(ok.any()):
            H = _precision(G, z, operator, sigma)
    return z, H


def _informed_draw(H, gen, like):
    """Draws ``(B, d)`` of ``N(0, H^-1)`` restricted to the directions the data inform (eigenvalues
    of ``H`` above 2, where the likelihood outweighs the prior and the local Gaussian is reliable)."""
    ev, vecs = torch.linalg.eigh(H)
    scale = torch.where(ev > 2, ev.rsqrt(), torch.zeros_like(ev))
    return (vecs @ (scale * _draw(ev.shape, gen, like))[..., None])[..., 0]


def _langevin(y, operator, prior, n, sigma, gen, seed, steps, progress, solve_options, start=None):
    """MAP solve (or ``start``) and mode polish, Laplace preconditioner, ``steps`` MALA steps on
    ``n`` chains per observation started at the mode plus a draw in the data-informed directions."""
    B = y.shape[0]
    opts = {"sigma": sigma, **solve_options}
    res = start if start is not None else solve(y, operator, prior, method="latent", seed=seed,
                                                progress=progress, **opts)
    G = prior.in_space("z")
    post1 = _Posterior(G, y, operator, sigma, 1)
    mode, H = _mode(post1, G, res.latents["z"].detach().double().flatten(1), operator, sigma, _MODE_ITERS)
    L = torch.linalg.cholesky(H).repeat(n, 1, 1)  # (n*B, d, d)
    z = mode.repeat(n, 1) + _informed_draw(H.repeat(n, 1, 1), gen, mode)
    post = _Posterior(G, y, operator, sigma, n)
    images, acceptance, h = _mala(post, z, L, n, B, steps, gen)
    return images.view(n, B, *images.shape[1:]), res, acceptance, h


def _mala(post, z, L, n, B, steps, gen):
    """``steps`` preconditioned MALA steps (``H = L L^T``) of ``n * B`` chains ``z (n*B, d)``; the
    first half adapts each observation's step towards the optimal acceptance rate."""
    d = L.shape[-1]
    precond = lambda g: torch.cholesky_solve(g[..., None], L)[..., 0]  # noqa: E731  H^-1 g
    root = lambda e: torch.linalg.solve_triangular(L.transpose(1, 2), e[..., None], upper=True)[..., 0]  # noqa: E731
    logp, g = post(z)
    log_h = torch.full((B,), math.log(1.65 ** 2 * d ** (-1 / 3)), dtype=torch.float64, device=z.device)
    adapt, accepted = steps // 2, torch.zeros(n * B, dtype=torch.float64, device=z.device)
    for t in range(steps):
        h = log_h.exp().repeat(n)[:, None]
        mean_fwd = z + h / 2 * precond(g)
        prop = mean_fwd + h.sqrt() * root(_draw(z.shape, gen, z))
        logp_p, g_p = post(prop)
        mean_back = prop + h / 2 * precond(g_p)
        log_ratio = logp_p - logp - (_quad(L, z - mean_back) - _quad(L, prop - mean_fwd)) / (2 * h[:, 0])
        u = torch.rand(n * B, generator=gen, dtype=torch.float64).to(z.device)
        ok = torch.isfinite(logp_p) & (u.log() < log_ratio)
        z, logp, g = torch.where(ok[:, None], prop, z), torch.where(ok, logp_p, logp), torch.where(ok[:, None], g_p, g)
        if t < adapt:  # Robbins-Monro on log h towards the optimal acceptance
            log_h = log_h + (ok.double().view(n, B).mean(0) - TARGET_ACCEPTANCE) / math.sqrt(t + 1)
        else:
            accepted += ok.double()
    with torch.no_grad():
        images = post.G(z.float().view(-1, *post.G.latent_shape))
    return images, accepted.view(n, B).mean(0) / max(1, steps - adapt), log_h.exp()


def _quad(L: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v^T H v`` per row for ``H = L L^T``."""
    return (L.transpose(1, 2) @ v[..., None])[..., 0].square().sum(1)


def sample(y: torch.Tensor, operator: Callable, prior, n: int = 16, *, sigma: float,
           strategy: str = "langevin", method: str = "latent", seed: Optional[int] = None, steps: int = 100,
           max_dim: int = 512, progress: bool = False, solve_steps: Optional[int] = None,
           start: Optional[Result] = None, **solve_options) -> Samples:
    """Draw ``n`` posterior samples per observation and their per-pixel mean and std.

    Args:
        y: noisy observations ``(B, ...)`` as ``operator`` outputs them, ``y = A(x) + sigma * eps``.
        operator: a callable ``(B, C, H, W) -> (B, ...)``, e.g. an ``operators`` operator (one
            setting per sample is fine).
        prior: a :class:`priors.Generator`.
        n: samples per observation (``>= 1``).
        sigma: the Gaussian noise std of ``y`` (``> 0``), in the units of ``y``.
        strategy: ``"langevin"`` (MAP solve, then preconditioned Metropolis-adjusted Langevin on the
            latent; ``method`` must be ``"latent"``) or ``"ensemble"`` (independent solves of
            ``n`` noise-perturbed copies of ``y``; any ``method``). See the module docstring.
        method: the solve method (``"latent"``, ``"mgan"``, ``"dgp"``).
        seed: fixes everything (the solve, the perturbations, the chains); None draws one, recorded
            in ``options``.
        steps: Langevin steps (the first half adapts the step size); unused by ``"ensemble"``.
        max_dim: the largest latent the Langevin strategy accepts (it forms ``d x d`` matrices).
        progress: show the solve's progress bar.
        solve_steps: ``steps`` of the underlying :func:`restore.solve` (default: its preset's).
        start: Langevin only: the :class:`restore.Result` of your own ``restore.solve(y, ...,
            method="latent")`` of these observations, to start from instead of solving again.
        **solve_options: passed to :func:`restore.solve` (``preset``, ``steps``, ...). The solves
            get the noise level (``sigma``; ``sqrt(2) sigma`` for the perturbed copies of the
            ensemble), so samples stop at their noise floor.

    Returns:
        :class:`Samples`: ``samples (n, B, C, H, W)``, ``mean``/``std (B, C, H, W)``, ``fit (n, B)``.

    Raises:
        ValueError: bad ``n``, ``sigma``, ``strategy``, ``steps``, or ``method`` for Langevin, or a
            latent larger than ``max_dim``, before any work (and whatever :func:`restore.solve`
            raises for ``y``, ``operator`` and ``prior`` that do not fit).
    """
    _check(y, prior, n, sigma, strategy, method, steps, max_dim)
    _check_start(start, strategy, prior, y.shape[0])
    seed = int(torch.Generator().seed() % (2 ** 31)) if seed is None else int(seed)
    gen = torch.Generator().manual_seed(seed + 1)  # the solve uses ``seed`` itself
    if solve_steps is not None:
        solve_options["steps"] = solve_steps
    acceptance, step_size = None, None
    if strategy == "ensemble":
        images, res = _ensemble(y, operator, prior, n, float(sigma), gen, seed, method, progress, solve_options)
    else:
        images, res, acceptance, step_size = _langevin(y, operator, prior, n, float(sigma), gen, seed, steps,
                                                       progress, solve_options, start)
    mean, std, fit = _summary(images, y, _Tiled(operator, y.shape[0]))
    options = {"strategy": strategy, "n": n, "sigma": float(sigma), "m": y[0].numel(), "seed": seed, "method": method,
               "steps": steps if strategy == "langevin" else None,
               "step_size": None if step_size is None else step_size.tolist(), "solve": res.options}
    return Samples(samples=images, mean=mean, std=std, fit=fit, options=options, solve=res, acceptance=acceptance)
