"""Levenberg-Marquardt polish of latent codes: fast, exact convergence once Adam found the basin.

For a least-squares data fit ``|A(G(z)) - y|^2`` and a small latent (``d <= max_dim``), each
sample's Jacobian ``J = d A(G(z)) / dz`` ``(m, d)`` comes from ``d`` forward-mode products
(``torch.func.jvp`` under ``vmap``, in chunks), and the damped Gauss-Newton step
``(J^T J + lambda diag(J^T J)) delta = -J^T r`` is taken when it lowers that sample's loss
(``lambda`` shrinks), else refused (``lambda`` grows). Samples never interact.
"""
from __future__ import annotations

from collections import deque

import torch
from torch.func import jvp, vmap

__all__ = ["levenberg_marquardt"]


def _jacobian(f, z: torch.Tensor, chunk: int) -> torch.Tensor:
    """``(B, m, d)`` Jacobians of ``f: (B, *latent) -> (B, m)`` at ``z``, per sample."""
    d = z[0].numel()
    eye = torch.eye(d, dtype=z.dtype, device=z.device).view(d, 1, *z.shape[1:]).expand(d, *z.shape)
    cols = [vmap(lambda v: jvp(f, (z,), (v,))[1])(part) for part in eye.split(chunk)]
    return torch.cat(cols).permute(1, 2, 0)


@torch.no_grad()
def levenberg_marquardt(f, z: torch.Tensor, y: torch.Tensor, steps: int, on_step=None, damping: float = 1e-2,
                        chunk: int = 25, tol: float = 1e-12, stall_window: int = 10,
                        stall_ratio: float = 0.99) -> torch.Tensor:
    """Minimize ``mean((f(z, idx) - y)**2)`` per sample over ``z`` ``(B, *latent)`` by LM; returns ``z``.

    ``f(z_rows, idx)`` maps the latents of samples ``idx`` (a LongTensor) to their observations.
    ``on_step(t, loss (B,), ok (B,), z)`` is called after each step and may return True to stop.
    A sample is done once its loss is below ``tol``, its damping has grown past ``1e6``, or it has
    stalled: its loss is above ``stall_ratio`` times its loss ``stall_window`` steps earlier (a
    local minimum, or an observation no code fits exactly; Gauss-Newton converges much faster
    than that near an exact fit). Done samples are left out of later Jacobians, and the polish
    ends when all are done.
    """
    yf = y.flatten(1)
    everyone = torch.arange(z.shape[0], device=z.device)
    res = f(z, everyone).flatten(1) - yf
    loss = res.square().mean(1)
    lam = torch.full_like(loss, damping)
    past = deque([loss], maxlen=stall_window + 1)  # the loss now and ``stall_window`` steps ago
    for t in range(steps):
        done = (loss < tol) | (lam >= 1e6)
        if len(past) == past.maxlen:
            done |= loss > stall_ratio * past[0]
        idx = everyone[~done]
        if len(idx) == 0:
            break
        zi, ri = z.index_select(0, idx), res.index_select(0, idx)
        J = _jacobian(lambda zz: f(zz, idx).flatten(1), zi, chunk).double()
        jtj = J.transpose(1, 2) @ J
        diag = torch.diagonal(jtj, dim1=1, dim2=2)
        h = jtj + torch.diag_embed(lam[idx].double()[:, None] * diag + 1e-12)
        step = torch.linalg.solve(h, -(J.transpose(1, 2) @ ri.double()[..., None]))[..., 0]
        z_new = zi + step.to(z.dtype).view_as(zi)
        res_new = f(z_new, idx).flatten(1) - yf.index_select(0, idx)
        loss_new = res_new.square().mean(1)
        accept = torch.isfinite(loss_new) & (loss_new < loss[idx])
        take = idx[accept]
        z, res, loss = z.clone(), res.clone(), loss.clone()
        z[take], res[take], loss[take] = z_new[accept], res_new[accept], loss_new[accept]
        lam[idx] = torch.where(accept, lam[idx] / 3, lam[idx] * 4).clamp(1e-8, 1e8)
        past.append(loss)
        if on_step is not None and on_step(t, loss, torch.isfinite(loss), z):
            break
    return z
