"""The one optimization loop of :func:`restore.solve` and its per-sample best-iterate tracker.

Each step: render, per-sample data-fit loss in observation space, backward of the summed finite
losses, per-sample Adam (:class:`restore.optim.MaskedAdam`) that skips samples whose loss or
gradient is not finite, then :meth:`Tracker.record`: the best iterate per sample, the history,
the progress bar and the callbacks. A callback that returns True raises :class:`StopSolve`,
which :func:`restore.solve` catches once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from .optim import MaskedAdam, grad_finite_rows
from .problem import Rows

__all__ = ["StepState", "StopSolve", "Tracker", "optimize"]


@dataclass(frozen=True)
class StepState:
    """What a callback sees at each step: the step index, the data-fit loss per sample ``(B,)``
    and the current images ``(B, C, H, W)`` in ``[0, 1]`` (detached)."""

    step: int
    loss: torch.Tensor
    image: torch.Tensor


class StopSolve(Exception):
    """A callback asked the solve to stop (raised by :meth:`Tracker.record`)."""


class Tracker:
    """Per-sample best iterate (loss, image, step, state), loss history and skipped steps of a
    solve over ``batch`` samples; every step of every phase is recorded through :meth:`record`,
    which also advances the progress ``bar`` and calls the ``callbacks``."""

    def __init__(self, batch: int, callbacks: Sequence[Callable] = (), bar=None):
        self.batch, self.callbacks, self.bar = batch, tuple(callbacks), bar
        self.best_loss = None
        self.image = self.best_step = None
        self.state: dict = {}
        self.history: list = []
        self.nonfinite = torch.zeros(batch, dtype=torch.long)

    @staticmethod
    def _reduce(fit, ok, image, state, g: int):
        """Each sample's best of its ``g`` rows."""
        B = fit.shape[0] // g
        masked = torch.where(ok, fit, torch.full_like(fit, float("inf"))).view(B, g)
        idx = masked.argmin(1)
        rows = torch.arange(B, device=fit.device) * g + idx
        pick = lambda t: t.index_select(0, rows)  # noqa: E731
        return masked.gather(1, idx[:, None])[:, 0], fit[rows], image.index_select(0, rows), \
            {k: pick(v) for k, v in state.items()}, ok.view(B, g).any(1), (~ok).view(B, g).any(1)

    @torch.no_grad()
    def update(self, fit, ok, image, state, rows: Rows):
        """Record one step (its index is the history length) of ``rows``; returns the rows'
        samples' current ``(loss, image)`` and the step index."""
        step = len(self.history)
        score, fit_b, image, state, ok_b, skipped = self._reduce(fit, ok, image, state, rows.group)
        idx = torch.arange(self.batch, device=fit.device) if rows.idx is None else rows.idx.to(fit.device)
        row = torch.full((self.batch,), float("nan"), dtype=fit.dtype)
        row[idx.cpu()] = torch.where(ok_b, fit_b, torch.full_like(fit_b, float("nan"))).cpu()
        self.history.append(row)
        self.nonfinite[idx.cpu()] += skipped.cpu().long()
        if self.best_loss is None:
            self.best_loss = torch.full((self.batch,), float("inf"), dtype=fit.dtype, device=fit.device)
            self.image = torch.zeros((self.batch, *image.shape[1:]), dtype=image.dtype, device=image.device)
            self.best_step = torch.full((self.batch,), -1, dtype=torch.long, device=fit.device)
        better = ok_b & (score < self.best_loss[idx])
        sel = idx[better]
        self.best_loss[sel] = score[better]
        self.best_step[sel] = step
        self.image[sel] = image[better]
        for k, v in state.items():
            if k not in self.state:  # first sight: every sample's value so far equals this one
                self.state[k] = v.new_zeros((self.batch, *v.shape[1:])) if rows.idx is not None else v.clone()
            self.state[k][sel] = v[better]
        return fit_b, image, step

    def record(self, fit, ok, image, state, rows: Rows) -> None:
        """:meth:`update`, then :meth:`notify`."""
        self.notify(*self.update(fit, ok, image, state, rows))

    def notify(self, cur_fit, cur_image, step: int) -> None:
        """Advance the bar and call the callbacks with the step's :class:`StepState`; raises
        :class:`StopSolve` when a callback returns True."""
        if self.bar is not None:
            self.bar.update(1)
            if step % 10 == 0:
                finite = cur_fit[torch.isfinite(cur_fit)]
                self.bar.set_postfix(loss=f"{float(finite.mean()) if len(finite) else float('nan'):.3g}")
        if self.callbacks:
            state = StepState(step, cur_fit, cur_image)
            if any(bool(cb(state)) for cb in self.callbacks):
                raise StopSolve

    def best(self, *keys: str) -> dict:
        """Copies of the best iterate's state entries ``keys`` (all when none given), ``(B, ...)``."""
        return {k: v.clone() for k, v in self.state.items() if not keys or k in keys}


def optimize(param, rows: Rows, loss_fn, *, steps: int, lrs_at, betas, penalty: float, tracker: Tracker) -> None:
    """``steps`` per-sample Adam steps of ``param`` (a parametrization: ``forward``, ``groups``,
    ``state``, ``penalty``) on the data fit ``loss_fn(rows.operator(param()), rows.y)`` ``(R,)``
    plus ``penalty`` times the latent penalty; ``lrs_at(t) -> {group: rate}``."""
    groups = param.groups()
    leaves = [p for ps in groups.values() for p in ps]
    opt = MaskedAdam(groups, betas)
    n = leaves[0].shape[0]
    for t in range(steps):
        image = param()
        fit = loss_fn(rows.operator(image), rows.y)
        if not isinstance(fit, torch.Tensor) or fit.shape != (n,):
            raise ValueError(f"the loss must return one value per sample, shape ({n},), got "
                             f"{tuple(fit.shape) if isinstance(fit, torch.Tensor) else type(fit).__name__}")
        total = fit + penalty * param.penalty() if penalty else fit
        finite = torch.isfinite(total.detach())
        for p in leaves:
            p.grad = None
        torch.where(finite, total, torch.zeros_like(total)).sum().backward()
        ok = finite & grad_finite_rows(leaves, n)
        current = tracker.update(fit.detach(), ok, image.detach(), param.state(), rows)
        opt.step(lrs_at(t), ok)
        tracker.notify(*current)
