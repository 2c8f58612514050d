"""What a solve is about, fixed for its whole run: the :class:`Problem`, its sub-batch views and
the pool of initial codes ranked by data fit.

* :class:`Problem` (frozen): generator, observations ``y (B, ...)``, operator, loss, seed, classes.
* :class:`Rows` (frozen): a view of some of its samples, each possibly repeated (parallel
  starts): the rows' observations and operator, and which samples they belong to. Every
  optimization step and Levenberg-Marquardt step runs on one.
* :class:`Pool`: ``n`` seeded initial latents (and classes) with each sample's ranking of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import torch

from operators.batching import Repeated, Row, Subset, is_per_sample

__all__ = ["Problem", "Rows", "Pool", "draw_pool"]


@dataclass(frozen=True)
class Problem:
    """A solve's fixed inputs.

    G: the prior (a :class:`priors.Generator`, in the solve's latent space).
    y: observations ``(B, ...)`` (detached). operator: ``(B, C, H, W) -> (B, ...)``.
    loss: ``(A(G(.)), y) -> (B,)`` data-fit loss. seed: the solve's seed.
    c: class labels ``(B,)`` / ``(B, n_classes)`` for a conditional prior, or None.
    floor: ``(B,)`` the data-fit loss at which each sample is at its noise floor (``sigma**2``
        for Gaussian noise of std ``sigma`` and the MSE loss: the discrepancy principle), 0 when
        unknown (None: zeros).
    held: self-validation: ``(operator, y)`` of the held-out entries (``y`` and ``operator``
        then see only the fitted ones); every iterate is scored by its held-out MSE and the
        best-scoring one is kept. None: iterates are kept by their data fit.
    copies: rows per observation (``solve(..., average=K)``): ``y`` holds each observation
        ``copies`` times (consecutive rows), and each copy starts from its own disjoint share of
        the initial candidates (:func:`draw_pool`), so the copies are independent solves.
    """

    G: Any
    y: torch.Tensor
    operator: Callable
    loss: Callable
    seed: int
    c: Optional[torch.Tensor] = None
    floor: Optional[torch.Tensor] = None
    held: Optional[Tuple[Callable, torch.Tensor]] = None
    copies: int = 1

    def __post_init__(self):
        floor = torch.zeros(self.y.shape[0], dtype=torch.float64) if self.floor is None else self.floor
        object.__setattr__(self, "floor", torch.as_tensor(floor, dtype=torch.float64).to(self.y.device)
                           .expand(self.y.shape[0]).clone())

    @property
    def batch(self) -> int:
        return self.y.shape[0]

    def rows(self, idx: Optional[torch.Tensor] = None, group: int = 1) -> "Rows":
        """The view of samples ``idx`` ``(S,)`` (None: all, in order), ``group`` rows each."""
        ops = [(self.operator, self.y)] + ([self.held] if self.held is not None else [])
        views = [self._view(op, y, idx, group) for op, y in ops]
        floor = (self.floor if idx is None else self.floor.index_select(0, idx)).repeat_interleave(group)
        if idx is not None and len(idx) == self.batch:  # every sample: tracked as the whole batch
            idx = None
        return Rows(idx, group, views[0][1], views[0][0], views[1] if len(views) > 1 else None, floor)

    def _view(self, op, y, idx, group):
        if idx is not None:
            y, op = y.index_select(0, idx), Subset(op, idx, self.batch)
        if group > 1:
            y, op = y.repeat_interleave(group, 0), Repeated(op, group)
        return op, y


@dataclass(frozen=True)
class Rows:
    """Rows of a sub-problem: samples ``idx`` ``(S,)`` of the solve (None: all ``B``), each
    repeated ``group`` times (consecutive rows); ``y`` ``(S * group, ...)`` their observations
    and ``operator`` their operator ``(S * group, C, H, W) -> (S * group, ...)``; ``held`` the
    same view ``(operator, y)`` of the held-out entries (self-validation), or None; ``floor``
    ``(S * group,)`` each row's noise floor."""

    idx: Optional[torch.Tensor]
    group: int
    y: torch.Tensor
    operator: Callable
    held: Optional[Tuple[Callable, torch.Tensor]] = None
    floor: Optional[torch.Tensor] = None  # (S * group,) each row's noise floor

    def held_score(self, image: torch.Tensor) -> Optional[torch.Tensor]:
        """``(R,)`` held-out MSE of ``image`` ``(R, C, H, W)``, or None without self-validation."""
        if self.held is None:
            return None
        op, y = self.held
        return (op(image) - y).flatten(1).square().mean(1)


@dataclass(frozen=True)
class Pool:
    """``z`` ``(n, *latent_shape)`` seeded initial latents; ``order`` ``(B, n)`` each sample's
    candidates by data fit, best first; ``classes`` ``(n,)`` the class id drawn with each latent
    (conditional priors optimizing their class without given labels), else None."""

    z: torch.Tensor
    order: torch.Tensor
    classes: Optional[torch.Tensor] = None

    def start_classes(self, problem: Problem, ranks: torch.Tensor, idx: torch.Tensor):
        """The initial class of each start ``ranks`` ``(S, m)`` of samples ``idx``: the drawn
        pair's class, else the sample's given ``c`` (``(S, m)`` ids or ``(S, m, n_classes)``); or None."""
        if self.classes is not None:
            return self.classes[ranks]
        if problem.c is None:
            return None
        c = problem.c.index_select(0, idx)
        return c[:, None].expand(c.shape[0], ranks.shape[1], *c.shape[1:])

    def first_classes(self, problem: Problem):
        """Each sample's class at its best candidate: ``(B,)`` drawn ids, or the given ``c``."""
        return self.classes[self.order[:, 0]] if self.classes is not None else problem.c


def _scores(operator, images, yf):
    """``(B, k)`` squared distances (up to a per-sample constant) of ``A(images)`` to ``y``."""
    if not is_per_sample(operator):
        ax = operator(images).flatten(1).double()
        return (ax * ax).sum(1)[None] - 2 * yf @ ax.T
    cols = []
    for img in images:  # a per-sample operator sees each candidate once per sample
        ax = operator(img.expand(yf.shape[0], *img.shape)).flatten(1).double()
        cols.append((ax * ax).sum(1) - 2 * (ax * yf).sum(1))
    return torch.stack(cols, 1)


@torch.no_grad()
def draw_pool(problem: Problem, n: int, chunk: int, draw_classes: bool = False) -> Pool:
    """``n`` latents seeded by ``problem.seed``, ranked per sample by data fit (MSE of
    ``A(G(z))`` to ``y``), rendered ``chunk`` at a time. With ``draw_classes`` (a conditional
    prior without given classes) each latent comes with a class id drawn from a
    ``torch.Generator`` seeded with the same seed, and renders with it. With ``problem.copies``
    ``K > 1`` the candidates are dealt out: copy ``k`` of an observation ranks only candidates
    ``k, k + K, k + 2K, ...`` (``n // K`` of them), so the copies start apart."""
    G, y, op, c = problem.G, problem.y, problem.operator, problem.c
    n = max(n // problem.copies, 1) * problem.copies
    z = G.sample_latents(n, seed=problem.seed, device=y.device)
    yf = y.flatten(1).double()
    if draw_classes:
        ids = torch.randint(G.n_classes, (n,), generator=torch.Generator().manual_seed(problem.seed)).to(y.device)
        scores = [_scores(op, G(part, cls), yf) for part, cls in zip(z.split(chunk), ids.split(chunk))]
        return Pool(z, _dealt(torch.cat(scores, 1).argsort(1), problem.copies), ids)
    scores = []
    for part in z.split(chunk):
        if c is None:
            scores.append(_scores(op, G(part), yf))
        else:  # conditional: each sample renders the candidates with its own class
            rows = [_scores(Row(op, b), G(part, c[b:b + 1].expand(len(part), *c.shape[1:])), yf[b:b + 1])
                    for b in range(problem.batch)]
            scores.append(torch.cat(rows))
    return Pool(z, _dealt(torch.cat(scores, 1).argsort(1), problem.copies))


def _dealt(order: torch.Tensor, copies: int) -> torch.Tensor:
    """``(R, n // copies)``: row ``r``'s ranking ``order`` ``(R, n)`` kept to the candidates
    ``j`` with ``j % copies == r % copies`` (its copy's share), in the same order."""
    if copies == 1:
        return order
    share = torch.arange(order.shape[0], device=order.device)[:, None] % copies
    return order[order % copies == share].view(order.shape[0], -1)
