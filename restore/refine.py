"""Levenberg-Marquardt polish of latent codes: fast, exact convergence once Adam found the basin.

For a least-squares data fit ``|A(G(z)) - y|^2`` and a small latent (``d <= max_dim``), each
sample's Jacobian ``J = d A(G(z)) / dz`` ``(m, d)`` comes from ``d`` forward-mode products
(``torch.func.jvp`` under ``vmap``, in chunks), and the damped Gauss-Newton step
``(J^T J + lambda diag(J^T J)) delta = -J^T r`` is taken when it lowers that sample's loss
(``lambda`` shrinks), else refused (``lambda`` grows). Samples never interact.
"""
from __future__ import annotations

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
                        chunk: int = 25) -> torch.Tensor:
    """Minimize ``mean((f(z) - y)**2)`` per sample over ``z`` ``(B, *latent)`` by LM; returns ``z``.

    ``f`` maps latents to observations ``(B, ...)``; ``on_step(t, loss (B,), ok (B,), z)`` is
    called after each evaluation and may return True to stop.
    """
    yf = y.flatten(1)
    g = lambda zz: f(zz).flatten(1)  # noqa: E731
    res = g(z) - yf
    loss = res.square().mean(1)
    lam = torch.full_like(loss, damping)
    for t in range(steps):
        J = _jacobian(g, z, chunk).double()
        jtj = J.transpose(1, 2) @ J
        diag = torch.diagonal(jtj, dim1=1, dim2=2)
        h = jtj + torch.diag_embed(lam.double()[:, None] * diag + 1e-12)
        step = torch.linalg.solve(h, -(J.transpose(1, 2) @ res.double()[..., None]))[..., 0]
        z_new = z + step.to(z.dtype).view_as(z)
        res_new = g(z_new) - yf
        loss_new = res_new.square().mean(1)
        accept = torch.isfinite(loss_new) & (loss_new < loss)
        rows = accept.view(-1, *([1] * (z.dim() - 1)))
        z = torch.where(rows, z_new, z)
        res = torch.where(accept[:, None], res_new, res)
        loss = torch.where(accept, loss_new, loss)
        lam = torch.where(accept, lam / 3, lam * 4).clamp(1e-8, 1e8)
        if on_step is not None and on_step(t, loss, torch.isfinite(loss), z):
            break
    return z
