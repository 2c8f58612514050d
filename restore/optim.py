"""A per-sample Adam and the learning-rate schedule of the solver loop.

Every optimized tensor has the batch as its leading dimension, so Adam (elementwise) treats
samples independently; :class:`MaskedAdam` also skips the update of chosen samples (a sample whose
loss or gradient is non-finite keeps its parameters *and* its moment estimates).
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

import torch

__all__ = ["ramp_lr", "MaskedAdam"]


def ramp_lr(t: float, peak: float, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """Learning rate at progress ``t`` in ``[0, 1]``: linear warm-up over the first ``rampup``
    fraction, cosine cool-down over the last ``rampdown`` fraction, ``peak`` in between.

    >>> ramp_lr(0.5, 0.1)
    0.1
    >>> round(ramp_lr(1.0, 0.1), 6)
    0.0
    """
    scale = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    scale = 0.5 - 0.5 * math.cos(scale * math.pi)
    if rampup > 0:
        scale *= min(1.0, t / rampup) if t > 0 else 1.0 / max(1, int(1 / rampup))
    return peak * scale


class MaskedAdam:
    """Adam over groups of tensors shaped ``(B, ...)``, with a per-sample update mask.

    Args:
        groups: ``{name: [tensors]}``; each group gets its own learning rate in :meth:`step`.
        betas, eps: as in :class:`torch.optim.Adam`.
    The bias correction counts each sample's own steps, so a skipped step is fully skipped.
    """

    def __init__(self, groups: Dict[str, Sequence[torch.Tensor]], betas=(0.9, 0.999), eps: float = 1e-8):
        self.groups = {k: list(v) for k, v in groups.items()}
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        params = [p for ps in self.groups.values() for p in ps]
        if not params:
            raise ValueError("MaskedAdam needs at least one tensor")
        self.batch = params[0].shape[0]
        self.m = {id(p): torch.zeros_like(p) for p in params}
        self.v = {id(p): torch.zeros_like(p) for p in params}
        self.t = torch.zeros(self.batch, device=params[0].device, dtype=params[0].dtype)
        self._scratch = {}

    @torch.no_grad()
    def step(self, lrs: Dict[str, float], active: torch.Tensor) -> None:
        """One update of the samples where ``active`` (a (B,) bool mask) is True.

        ``lrs`` maps group names to learning rates; a group at rate 0 (or absent) is not touched.
        The active samples' gradients must be finite (:func:`grad_finite_rows`; the solver loop
        leaves the others out); the inactive samples keep their parameters and moments, whatever
        their gradients hold. All active: one in-place pass over each tensor; a few inactive: the
        same pass, then their rows put back; mostly inactive: the update runs on the active rows
        only. The arithmetic per element is the same on every path, so a sample's path does not
        depend on which others are active.
        """
        b1, b2 = self.betas
        act = active.to(self.t.dtype)
        self.t.add_(act)
        tc = self.t.clamp(min=1)
        bc1 = 1 - b1 ** tc if b1 > 0 else torch.ones_like(tc)
        bc2 = 1 - b2 ** tc
        inactive = (~active).nonzero().squeeze(1)
        rows = None if inactive.numel() == 0 else active.nonzero().squeeze(1)
        if rows is not None and rows.numel() == 0:
            return
        for name, params in self.groups.items():
            lr = float(lrs.get(name, 0.0))
            if lr == 0.0:
                continue
            for p in params:
                if p.grad is None:
                    continue
                m, v = self.m[id(p)], self.v[id(p)]
                if rows is None:
                    self._adam(p, p.grad, m, v, lr, bc1, bc2, self._buffer(p))
                elif inactive.numel() <= rows.numel():  # few sit out: update all, put theirs back
                    kept = [t.index_select(0, inactive) for t in (p, m, v)]
                    self._adam(p, p.grad, m, v, lr, bc1, bc2, self._buffer(p))
                    for full, old in zip((p, m, v), kept):
                        full.index_copy_(0, inactive, old)
                else:  # most sit out: update the active rows alone
                    part = [t.index_select(0, rows) for t in (p, p.grad, m, v)]
                    self._adam(*part, lr, bc1[rows], bc2[rows], torch.empty_like(part[0]))
                    for full, new in zip((p, m, v), (part[0], part[2], part[3])):
                        full.index_copy_(0, rows, new)

    def _buffer(self, p: torch.Tensor) -> torch.Tensor:
        """A scratch tensor shaped like ``p``, kept between steps (allocating one per step costs
        more than the update on a CPU: fresh pages of a large tensor fault in on first touch)."""
        buf = self._scratch.get(id(p))
        if buf is None:
            buf = self._scratch[id(p)] = torch.empty_like(p)
        return buf

    def _adam(self, p, g, m, v, lr, bc1, bc2, denom) -> None:
        """In place: ``m, v`` moments, ``p -= lr m̂ / (sqrt(v̂) + eps)`` with per-row bias
        corrections ``bc1, bc2`` ``(R,)``; every tensor ``(R, ...)``; ``denom`` scratch of ``p``'s shape.
        The inactive rows' entries may be anything (even NaN): no row's arithmetic reads another's."""
        b1, b2 = self.betas
        shape = (-1,) + (1,) * (p.dim() - 1)
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        torch.div(v, bc2.view(shape), out=denom)
        denom.sqrt_().add_(self.eps).mul_(bc1.view(shape))
        p.addcdiv_(m, denom, value=-lr)


def grad_finite_rows(params: List[torch.Tensor], batch: int) -> torch.Tensor:
    """A (B,) bool mask of samples whose gradients are all finite.

    One reduction a tensor: a row's sum is finite when its entries are (an inf or NaN makes it
    non-finite); only rows whose sum is not (an overflow of huge finite entries included) are
    checked entry by entry."""
    ok = torch.ones(batch, dtype=torch.bool, device=params[0].device)
    for p in params:
        if p.grad is None:
            continue
        g = p.grad.reshape(batch, -1)
        bad = ~torch.isfinite(g.sum(1))
        if bool(bad.any()):
            ok &= ~bad | torch.isfinite(g).all(1)
    return ok
