"""The one optimization loop of :func:`restore.solve` and its per-sample best-iterate tracker.

Each step: render, per-sample data-fit loss in observation space, backward of the summed finite
losses, per-sample Adam (:class:`restore.optim.MaskedAdam`) that skips samples whose loss or
gradient is not finite, then :meth:`Tracker.record`: the best iterate per sample, the history,
the progress bar and the callbacks. A callback that returns True raises :class:`StopSolve`,
which :func:`restore.solve` catches once.
"""
from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .optim import MaskedAdam, grad_finite_rows
from .problem import Rows

__all__ = ["StepState", "StopSolve", "Tracker", "Stopping", "optimize"]


@dataclass(frozen=True)
class StepState:
    """What a callback sees at each step: the step index, the data-fit loss per sample ``(B,)``
    and the current images ``(B, C, H, W)`` in ``[0, 1]`` (detached)."""

    step: int
    loss: torch.Tensor
    image: torch.Tensor


class StopSolve(Exception):
    """A callback asked the solve to stop (raised by :meth:`Tracker.record`)."""


@dataclass(frozen=True)
class Stopping:
    """When a row of an Adam phase stops (its parameters freeze; the phase ends once all rows
    have stopped, or its steps or the solve's budget are spent).

    tol: converged: its loss is below ``tol`` (an exact fit), or below its row's noise floor
        (``Rows.floor``: ``sigma**2`` when the noise level is known, else 0).
    window, rtol: stalled: its best loss fell by less than ``rtol`` (relative) over the last
        ``window`` steps (a local minimum, or the floor of an observation no code fits).
    """

    tol: float = 1e-12
    window: int = 40
    rtol: float = 1e-3


class Tracker:
    """Per-sample best iterate (loss, image, step, state), loss history and skipped steps of a
    solve over ``batch`` samples; every step of every phase is recorded through :meth:`record`,
    which also spends the solve's ``budget`` (generator passes: an Adam step of any rows is one,
    a Levenberg-Marquardt step counts its passes), advances the progress ``bar`` (its total is
    the budget, fixed at the start) and calls the ``callbacks``."""

    def __init__(self, batch: int, callbacks: Sequence[Callable] = (), bar=None, budget: Optional[float] = None,
                 name: str = "restore"):
        self.batch, self.callbacks, self.bar, self.name = batch, tuple(callbacks), bar, name
        self.budget = float("inf") if budget is None else float(budget)
        self.spent = torch.zeros(batch, dtype=torch.float64)  # per sample, in generator passes
        self._caps: list = []
        self.best_loss = None
        self.image = self.best_step = None
        self.state: dict = {}
        self.history: list = []
        self.nonfinite = torch.zeros(batch, dtype=torch.long)

    def _samples(self, rows: Optional[Rows]):
        return slice(None) if rows is None or rows.idx is None else rows.idx.cpu()

    def _left_each(self) -> torch.Tensor:
        end = torch.full((self.batch,), self.budget, dtype=torch.float64)
        for cap in self._caps:
            end = torch.minimum(end, cap)
        return end - self.spent

    def left(self, rows: Optional[Rows] = None) -> float:
        """Generator passes ``rows``' samples (all when None) can still spend, within the solve's
        budget and the innermost :meth:`capped` phase: the most over the samples (a phase is
        planned for it; a row whose sample has less stops when its own budget is spent,
        :meth:`row_budget_spent`)."""
        return float(self._left_each()[self._samples(rows)].max())

    def row_budget_spent(self, rows: Rows) -> torch.Tensor:
        """``(R,)`` rows whose sample cannot pay for one more step of its ``group`` rows."""
        left = self._left_each()[self._samples(rows)]
        return (left < rows.group).repeat_interleave(rows.group)

    @contextlib.contextmanager
    def capped(self, passes: float):
        """Phases run inside spend at most ``passes`` more generator passes per sample."""
        self._caps.append(self.spent + passes)
        try:
            yield
        finally:
            self._caps.pop()

    def phase(self, name: str) -> None:
        """Name the current phase on the progress bar."""
        if self.bar is not None:
            self.bar.set_description(f"{self.name} {name}", refresh=False)

    def finish(self) -> None:
        """The bar ends at 100% (an early stop jumps to the end)."""
        if self.bar is not None and self.bar.total is not None and self.bar.n < self.bar.total:
            self.bar.update(self.bar.total - self.bar.n)

    @staticmethod
    def _reduce(score, fit, ok, image, state, g: int):
        """Each sample's best of its ``g`` rows by ``score``."""
        B = fit.shape[0] // g
        masked = torch.where(ok, score, torch.full_like(score, float("inf"))).view(B, g)
        if g == 1:  # one row a sample: nothing to pick (and no copy of a DGP's stacked blocks)
            return masked[:, 0], fit, image, state, ok, ~ok
        idx = masked.argmin(1)
        rows = torch.arange(B, device=fit.device) * g + idx
        pick = lambda t: t.index_select(0, rows)  # noqa: E731
        return masked.gather(1, idx[:, None])[:, 0], fit[rows], image.index_select(0, rows), \
            {k: pick(v) for k, v in state.items()}, ok.view(B, g).any(1), (~ok).view(B, g).any(1)

    @torch.no_grad()
    def update(self, fit, ok, image, state, rows: Rows):
        """Record one step (its index is the history length) of ``rows``; returns the rows'
        samples' current ``(loss, image)`` and the step index. The kept iterate of a sample is
        its best by held-out error (self-validation), else by data fit; ``best_loss`` is the
        best data fit seen (what decides convergence)."""
        step = len(self.history)
        held = rows.held_score(image)
        score, fit_b, image, state, ok_b, skipped = self._reduce(fit if held is None else held, fit, ok, image,
                                                                 state, rows.group)
        idx = torch.arange(self.batch, device=fit.device) if rows.idx is None else rows.idx.to(fit.device)
        row = torch.full((self.batch,), float("nan"), dtype=fit.dtype)
        row[idx.cpu()] = torch.where(ok_b, fit_b, torch.full_like(fit_b, float("nan"))).cpu()
        self.history.append(row)
        self.nonfinite[idx.cpu()] += skipped.cpu().long()
        if self.best_loss is None:
            inf = torch.full((self.batch,), float("inf"), dtype=fit.dtype, device=fit.device)
            self.best_loss, self.best_score, self.kept_fit = inf, inf.clone(), inf.clone()
            self.image = torch.zeros((self.batch, *image.shape[1:]), dtype=image.dtype, device=image.device)
            self.best_step = torch.full((self.batch,), -1, dtype=torch.long, device=fit.device)
        fits = torch.where(ok_b, fit_b, torch.full_like(fit_b, float("inf")))
        self.best_loss[idx] = torch.minimum(self.best_loss[idx], fits)
        better = ok_b & (score < self.best_score[idx])
        sel = idx[better]
        self.best_score[sel] = score[better]
        self.kept_fit[sel] = fit_b[better]
        self.best_step[sel] = step
        everyone = rows.idx is None and bool(better.all())
        picked = None if everyone else better.nonzero().squeeze(1)
        self.image[sel] = image[better]
        for k, v in state.items():
            if k not in self.state and rows.idx is None:  # first sight: every sample's value so far is this one
                self.state[k] = v.clone()
                continue
            if k not in self.state:
                self.state[k] = v.new_zeros((self.batch, *v.shape[1:]))
            if everyone:  # one pass over a DGP's stacked blocks, not a gather and a scatter
                self.state[k].copy_(v)
            elif picked.numel():
                self.state[k].index_copy_(0, sel, v.index_select(0, picked))
        return fit_b, image, step

    def record(self, fit, ok, image, state, rows: Rows, passes=1) -> None:
        """:meth:`update`, then :meth:`notify`."""
        self.notify(*self.update(fit, ok, image, state, rows), rows=rows, passes=passes)

    def notify(self, cur_fit, cur_image, step: int, rows: Optional[Rows] = None, passes=1) -> None:
        """Spend ``passes`` per row (a float, or ``(R,)`` per row), advance the bar (to the mean
        spent over samples) and call the callbacks with the step's :class:`StepState`; raises
        :class:`StopSolve` when a callback returns True."""
        per_row = torch.as_tensor(passes, dtype=torch.float64).cpu()
        if per_row.dim() == 0:
            self.spent[self._samples(rows)] += float(per_row) * (rows.group if rows is not None else 1)
        else:  # (R,) passes per row: rows that sat the step out (stopped, done) cost nothing
            self.spent[self._samples(rows)] += per_row.view(-1, rows.group if rows is not None else 1).sum(1)
        if self.bar is not None:
            total = self.bar.total if self.bar.total is not None else float("inf")
            target = min(total, int(self.spent.mean()))
            if target > self.bar.n:
                self.bar.update(target - self.bar.n)
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


class _Stopper:
    """Which rows of an Adam phase have stopped (see :class:`Stopping`)."""

    def __init__(self, n: int, rule: Stopping, floor: Optional[torch.Tensor], device):
        self.rule = rule
        self.best = torch.full((n,), float("inf"), device=device)
        self.below = torch.full((n,), rule.tol, device=device) if floor is None else \
            floor.to(device=device, dtype=self.best.dtype).clamp(min=rule.tol)
        self.past = deque(maxlen=rule.window + 1)
        self.stopped = torch.zeros(n, dtype=torch.bool, device=device)

    def update(self, fit: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        r = self.rule
        self.best = torch.where(ok & (fit < self.best), fit.to(self.best), self.best)
        self.past.append(self.best)
        self.stopped |= self.best < self.below
        if len(self.past) == self.past.maxlen:
            self.stopped |= self.best > (1 - r.rtol) * self.past[0]
        return self.stopped


def optimize(param, rows: Rows, loss_fn, *, steps: int, lrs_at, betas, penalty: float, tracker: Tracker,
             stopping: Optional[Stopping] = None) -> None:
    """At most ``steps`` per-sample Adam steps of ``param`` (a parametrization: ``forward``,
    ``groups``, ``state``, ``penalty``) on the data fit ``loss_fn(rows.operator(param()), rows.y)``
    ``(R,)`` plus ``penalty`` times the latent penalty; ``lrs_at(t) -> {group: rate}``. With
    ``stopping``, rows stop on their own (converged, at their floor, or stalled) and the phase
    ends when all have; it also ends when the solve's budget is spent."""
    groups = param.groups()
    leaves = [p for ps in groups.values() for p in ps]
    opt = MaskedAdam(groups, betas)
    n = leaves[0].shape[0]
    stopper = _Stopper(n, stopping, rows.floor, leaves[0].device) if stopping is not None else None
    for t in range(steps):
        if tracker.left(rows) < rows.group or (stopper is not None and bool(stopper.stopped.all())):
            break
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
        if stopper is None:
            opt.step(lrs_at(t), ok)
            tracker.notify(*current, rows=rows)
            continue
        ran = ~stopper.stopped  # the rows that paid for this step
        stopper.update(fit.detach(), ok)  # a row stops on this step's loss: its parameters stay as evaluated
        tracker.notify(*current, rows=rows, passes=ran.double())
        stopper.stopped |= tracker.row_budget_spent(rows).to(stopper.stopped.device)
        if bool(stopper.stopped.all()):
            break
        opt.step(lrs_at(t), ok & ~stopper.stopped)
