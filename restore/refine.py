"""Levenberg-Marquardt polish of latent codes: exact convergence once in the basin.

For a least-squares data fit ``|A(G(z)) - y|^2`` per sample, each step solves the damped
Gauss-Newton system with ``J = d A(G(z)) / dz`` ``(m, d)``, in one of two ways:

* ``"dense"`` (small latents): ``J`` from ``d`` forward-mode products (``torch.func.jvp`` under
  ``vmap``, in chunks), then ``(J^T J + lambda diag(J^T J)) d = -J^T r`` solved exactly. On the
  64x64 DCGAN (``d = 100``) one such step costs about 0.7 of a 20-iteration matrix-free step and
  reaches the exact solution where the matrix-free step's inexact CG stalls (measured in
  ``benchmarks/speed.py``'s notes): it is the default up to ``dense_max_dim`` entries.
* ``"free"`` (large latents, e.g. StyleGAN2's ``w+``): ``J`` never formed: CGLS (conjugate gradient on the normal equations of the stacked system
``[J; sqrt(lambda s) I]``) needs one Jacobian-vector product (``torch.func.jvp``) and one
vector-Jacobian product (``torch.func.vjp``, its linearization reused for every iteration) per
  iteration, batched over samples, for ``min_d |J d + r|^2 + lambda s |d|^2``; ``s = |J v|^2 / d``
  for one Rademacher probe ``v`` estimates the mean diagonal of ``J^T J``, so ``lambda`` is
  relative to the Jacobian's scale.

The step is taken when it lowers that sample's loss (``lambda`` shrinks), else refused
(``lambda`` grows). Samples never interact. Cost of one step in generator passes (one pass =
one forward + one backward, the unit of an Adam step), :func:`step_passes`: ``2 + d / 6`` dense,
``2 + cg_iters`` free (each CG iteration is a jvp and a vjp).
"""
from __future__ import annotations

import functools
import warnings
from collections import deque

import torch
from torch.autograd import forward_ad
from torch.func import jvp, vjp, vmap

__all__ = ["levenberg_marquardt", "step_passes", "uses_dense"]

DENSE_MAX_DIM = 256


def uses_dense(d: int, jacobian: str = "auto") -> bool:
    """Whether a latent of ``d`` entries gets the dense Jacobian (``jacobian`` "auto": up to
    :data:`DENSE_MAX_DIM`)."""
    if jacobian not in ("auto", "dense", "free"):
        raise ValueError(f"jacobian must be 'auto', 'dense' or 'free', got {jacobian!r}")
    return jacobian == "dense" or (jacobian == "auto" and d <= DENSE_MAX_DIM)


def step_passes(d: int, cg_iters: int, jacobian: str = "auto") -> int:
    """The cost of one LM step in generator passes for a latent of ``d`` entries."""
    return 2 + (-(-d // 6) if uses_dense(d, jacobian) else cg_iters)


@functools.lru_cache(maxsize=None)
def _load_forward_ad() -> None:
    """Load torch's forward-mode AD decompositions once, silencing the one notice they raise.

    On first use, ``torch.func.jvp`` imports ``torch._decomp.decompositions_for_jvp``, which
    compiles its rules with ``torch.jit.script`` and so warns that ``torch.jit.script`` is
    deprecated: a notice about torch's own internals (this code calls no deprecated API), which
    would otherwise split the user's progress bar. Nothing else is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
        load = getattr(forward_ad, "_maybe_load_decompositions", None)  # torch >= 2.0; private, so guarded
        if load is not None:
            load()


def _jacobian(f, z: torch.Tensor, chunk: int) -> torch.Tensor:
    """``(B, m, d)`` dense Jacobians of ``f: (B, *latent) -> (B, m)`` at ``z``, per sample, from
    ``d`` forward-mode products in chunks of ``chunk`` (for small latents, e.g. a Laplace
    approximation in :mod:`restore.sample`; the polish below never forms it)."""
    _load_forward_ad()
    d = z[0].numel()
    eye = torch.eye(d, dtype=z.dtype, device=z.device).view(d, 1, *z.shape[1:]).expand(d, *z.shape)
    cols = [vmap(lambda v: jvp(f, (z,), (v,))[1])(part) for part in eye.split(chunk)]
    return torch.cat(cols).permute(1, 2, 0)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1)


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _damped_step(g, z, res, pullback, damp, iters: int, tol: float):
    """``d`` ``(S, *latent)`` minimizing ``|J d + res|^2 + damp |d|^2`` per sample by CGLS from 0.

    ``g`` maps codes to flat observations (``J`` its Jacobian at ``z``), ``pullback(u) = J^T u``;
    ``damp`` ``(S,)``. Stops a sample once ``|J^T r_1 + sqrt(damp) r_2| <= tol |J^T res|``.
    Returns ``d``."""
    sq = damp.sqrt()
    r1, r2 = -res, torch.zeros_like(z)
    s = pullback(r1)
    d, p = torch.zeros_like(z), s.clone()
    gamma = _dot(s, s)
    stop, done = tol ** 2 * gamma, gamma == 0
    for _ in range(iters):
        jp = jvp(g, (z,), (p,))[1]
        delta = _dot(jp, jp) + damp * _dot(p, p)
        alpha = torch.where(done | (delta <= 0), torch.zeros_like(gamma), gamma / delta.clamp_min(1e-300))
        d = d + _col(alpha, d) * p
        r1 = r1 - _col(alpha, r1) * jp
        r2 = r2 - _col(alpha * sq, r2) * p
        s = pullback(r1) + _col(sq, r2) * r2
        gamma_new = _dot(s, s)
        beta = torch.where(gamma > 0, gamma_new / gamma.clamp_min(1e-300), torch.zeros_like(gamma))
        p, gamma = s + _col(beta, p) * p, gamma_new
        done = done | (gamma <= stop)
        if bool(done.all()):
            break
    return d


def _dense_step(g, z, res, lam, chunk: int):
    """The exact damped step ``-(J^T J + lam diag(J^T J))^-1 J^T res`` ``(S, *latent)``."""
    J = _jacobian(g, z, chunk).double()
    jtj = J.transpose(1, 2) @ J
    diag = torch.diagonal(jtj, dim1=1, dim2=2)
    h = jtj + torch.diag_embed(lam.double()[:, None] * diag + 1e-12)
    step = torch.linalg.solve(h, -(J.transpose(1, 2) @ res.double()[..., None]))[..., 0]
    return step.to(z.dtype).view_as(z)


def _linearize(g, z):
    """``(flat observations (S, m), pullback u -> J^T u)`` at ``z``."""
    out, pull = vjp(g, z)
    return out, lambda u: pull(u)[0]


def _scale(g, z, seed: int) -> torch.Tensor:
    """``(S,)`` mean diagonal of ``J^T J`` from one Rademacher probe: ``|J v|^2 / d`` (the same
    seeded ``v`` for every sample, so that a sample's steps do not depend on its batch mates)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = (torch.randint(0, 2, z.shape[1:], generator=gen) * 2 - 1).to(z).expand_as(z)
    jv = jvp(g, (z,), (v,))[1]
    return _dot(jv, jv) / z[0].numel()


@torch.no_grad()
def levenberg_marquardt(f, z: torch.Tensor, y: torch.Tensor, steps: int, on_step=None, damping: float = 1e-2,
                        cg_iters: int = 20, cg_tol: float = 1e-3, tol: float = 1e-12, stall_window: int = 10,
                        stall_ratio: float = 0.99, jacobian: str = "auto", chunk: int = 25) -> torch.Tensor:
    """Minimize ``mean((f(z, idx) - y)**2)`` per sample over ``z`` ``(B, *latent)`` by LM; returns ``z``.

    ``f(z_rows, idx)`` maps the latents of samples ``idx`` (a LongTensor) to their observations.
    ``jacobian``: "dense", "free" or "auto" (dense up to :data:`DENSE_MAX_DIM` latent entries);
    ``chunk`` jvps per vmapped call (dense), ``cg_iters`` and ``cg_tol`` its CGLS (free).
    ``on_step(t, loss (B,), ok (B,), z, passes)`` is called after each step (``passes``: the
    step's cost in generator passes per sample, :func:`step_passes`, 0 for samples that sat
    it out) and may return True to stop. A sample is done once its loss
    is below ``tol``, its damping has grown past ``1e6``, or it has stalled: its loss is above
    ``stall_ratio`` times its loss ``stall_window`` steps earlier (a local minimum, or an
    observation no code fits exactly; Gauss-Newton converges much faster than that near an exact
    fit). Done samples are left out of later steps, and the polish ends when all are done.
    """
    _load_forward_ad()
    yf = y.flatten(1)
    dense = uses_dense(z[0].numel(), jacobian)
    passes = step_passes(z[0].numel(), cg_iters, jacobian)
    everyone = torch.arange(z.shape[0], device=z.device)
    loss = (f(z, everyone).flatten(1) - yf).square().mean(1)
    lam = torch.full_like(loss, damping)
    past = deque([loss], maxlen=stall_window + 1)  # the loss now and ``stall_window`` steps ago
    for t in range(steps):
        done = (loss < tol) | (lam >= 1e6)
        if len(past) == past.maxlen:
            done |= loss > stall_ratio * past[0]
        idx = everyone[~done]
        if len(idx) == 0:
            break
        zi, yi = z.index_select(0, idx), yf.index_select(0, idx)
        g = lambda zz: f(zz, idx).flatten(1)  # noqa: E731
        if dense:
            step = _dense_step(g, zi, g(zi) - yi, lam[idx], chunk)
        else:
            out, pullback = _linearize(g, zi)
            step = _damped_step(g, zi, out - yi, pullback, lam[idx] * _scale(g, zi, t), cg_iters, cg_tol)
        z_new = zi + step
        loss_new = (g(z_new) - yi).square().mean(1)
        accept = torch.isfinite(loss_new) & (loss_new < loss[idx])
        take = idx[accept]
        z, loss = z.clone(), loss.clone()
        z[take], loss[take] = z_new[accept], loss_new[accept]
        lam[idx] = torch.where(accept, lam[idx] / 3, lam[idx] * 4).clamp(1e-8, 1e8)
        past.append(loss)
        if on_step is not None and on_step(t, loss, torch.isfinite(loss), z, (~done).double() * passes):
            break
    return z
