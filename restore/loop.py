"""The one optimization loop of :func:`restore.solve` and its per-sample best-iterate tracker.

Each step: render, per-sample data-fit loss in observation space, backward of the summed finite
losses, per-sample Adam (:class:`restore.optim.MaskedAdam`) that skips samples whose loss or
gradient is not finite, then callbacks with an explicit :class:`StepState`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .optim import MaskedAdam, grad_finite_rows

__all__ = ["StepState", "Tracker", "optimize"]


@dataclass(frozen=True)
class StepState:
    """What a callback sees at each step: the step index, the data-fit loss per sample ``(B,)``
    and the current images ``(B, C, H, W)`` in ``[0, 1]`` (detached)."""

    step: int
    loss: torch.Tensor
    image: torch.Tensor



class Tracker:
    """Per-sample best iterate, history and skipped steps. ``group`` rows per sample (parallel
    starts) are reduced to the best of them."""

    def __init__(self, batch: int):
        self.batch, self.group, self.sub = batch, 1, None
        self.best_loss = None
        self.image = self.best_step = None
        self.state: dict = {}
        self.history: list = []
        self.nonfinite = torch.zeros(batch, dtype=torch.long)

    def _reduce(self, fit, ok, image, state):
        g = self.group
        B = fit.shape[0] // g
        masked = torch.where(ok, fit, torch.full_like(fit, float("inf"))).view(B, g)
        idx = masked.argmin(1)
        rows = torch.arange(B, device=fit.device) * g + idx
        pick = lambda t: t.index_select(0, rows)  # noqa: E731
        return masked.gather(1, idx[:, None])[:, 0], fit[rows], image.index_select(0, rows), \
            {k: pick(v) for k, v in state.items()}, ok.view(B, g).any(1), (~ok).view(B, g).any(1)

    @torch.no_grad()
    def update(self, fit, ok, image, state):
        """Record one step (its index is the history length) for the samples ``self.sub`` (all
        when None); returns their current ``(loss, image)`` and the step index."""
        step = len(self.history)
        score, fit_b, image, state, ok_b, skipped = self._reduce(fit, ok, image, state)
        idx = torch.arange(self.batch, device=fit.device) if self.sub is None else self.sub.to(fit.device)
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
                self.state[k] = v.new_zeros((self.batch, *v.shape[1:])) if self.sub is not None else v.clone()
            self.state[k][sel] = v[better]
        return fit_b, image, step


def _where_rows(rows, new, old):
    return torch.where(rows.view(-1, *([1] * (new.dim() - 1))), new, old)


def optimize(param, y, operator, loss_fn, *, steps, lrs_at, betas, penalty, tracker, callbacks, bar,
          on_step=None) -> bool:
    """The one optimization loop. Returns True when a callback asked to stop."""
    groups = param.groups()
    leaves = [p for ps in groups.values() for p in ps]
    opt = MaskedAdam(groups, betas)
    rows = leaves[0].shape[0]
    for t in range(steps):
        image = param()
        fit = loss_fn(operator(image), y)
        if not isinstance(fit, torch.Tensor) or fit.shape != (rows,):
            raise ValueError(f"the loss must return one value per sample, shape ({rows},), got "
                             f"{tuple(fit.shape) if isinstance(fit, torch.Tensor) else type(fit).__name__}")
        total = fit + penalty * param.penalty() if penalty else fit
        finite = torch.isfinite(total.detach())
        for p in leaves:
            p.grad = None
        torch.where(finite, total, torch.zeros_like(total)).sum().backward()
        ok = finite & grad_finite_rows(leaves, rows)
        cur_fit, cur_image, step = tracker.update(fit.detach(), ok, image.detach(), param.state())
        opt.step(lrs_at(t), ok)
        if on_step is not None:
            on_step(t, fit.detach(), ok, opt)
        bar.update(1)
        if step % 10 == 0:
            finite = cur_fit[torch.isfinite(cur_fit)]
            bar.set_postfix(loss=f"{float(finite.mean()) if len(finite) else float('nan'):.3g}")
        state = StepState(step, cur_fit, cur_image)
        if any(bool(cb(state)) for cb in callbacks):
            return True
    return False

