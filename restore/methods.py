"""The three inversion methods over the one loop: initial codes by data fit, parallel starts,
restarts, Levenberg-Marquardt polish (latent); multi-code mixing (mgan); staged fine-tuning (dgp).

Helpers here also let per-sample operators (one mask per sample) serve sub-batches and repeated
batches, so that every sample is solved independently of its batch mates.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from priors.class_vector import ClassVector
from priors.dgp import DeepPrior
from priors.latent_code import LatentCode
from priors.multi_code import MultiCode, default_split

from .losses import mse
from .loop import StepState, Tracker, optimize
from .optim import ramp_lr
from .options import LatentOptions
from .refine import levenberg_marquardt

__all__ = ["RUNNERS", "Run"]


def _per_sample(operator) -> bool:
    """Whether ``operator`` holds one setting per sample (then it only takes batches of that size)."""
    return getattr(operator, "batch_size", None) is not None


class _Repeated:
    """Apply a (possibly per-sample) operator to ``(B * m, ...)`` images, ``m`` rows per sample."""

    def __init__(self, operator, m: int):
        self.operator, self.m = operator, m

    def __call__(self, x):
        parts = x.unflatten(0, (-1, self.m)).unbind(1)
        return torch.stack([self.operator(p) for p in parts], 1).flatten(0, 1)


def _scores(operator, images, yf):
    """``(B, k)`` squared distances (up to a per-sample constant) of ``A(images)`` to ``y``."""
    if not _per_sample(operator):
        ax = operator(images).flatten(1).double()
        return (ax * ax).sum(1)[None] - 2 * yf @ ax.T
    cols = []
    for img in images:  # a per-sample operator sees each candidate once per sample
        ax = operator(img.expand(yf.shape[0], *img.shape)).flatten(1).double()
        cols.append((ax * ax).sum(1) - 2 * (ax * yf).sum(1))
    return torch.stack(cols, 1)


@torch.no_grad()
def _init_pool(G, y, operator, n, chunk, seed, c):
    """``n`` seeded latents and, per sample, their order by data fit (MSE of ``A(G(z))`` to
    ``y``): returns ``pool (n, *latent_shape)``, ``order (B, n)`` (best first)."""
    pool = G.sample_latents(n, seed=seed, device=y.device)
    yf = y.flatten(1).double()
    scores = []
    for part in pool.split(chunk):
        if c is None:
            scores.append(_scores(operator, G(part), yf))
        else:  # conditional: each sample renders the candidates with its own class
            rows = [_scores(_Row(operator, b), G(part, c[b:b + 1].expand(len(part), *c.shape[1:])), yf[b:b + 1])
                    for b in range(y.shape[0])]
            scores.append(torch.cat(rows))
    return pool, torch.cat(scores, 1).argsort(1)


@torch.no_grad()
def _init_pool_classes(G, y, operator, n, chunk, seed):
    """``n`` seeded (latent, class id) pairs, the ids drawn by a ``torch.Generator`` seeded with
    ``seed``, and per sample their order by data fit: ``pool (n, *latent_shape)``, ``order (B, n)``
    (best first), ``ids (n,)``. For conditional priors without given classes (``optimize_class``)."""
    pool = G.sample_latents(n, seed=seed, device=y.device)
    ids = torch.randint(G.n_classes, (n,), generator=torch.Generator().manual_seed(seed)).to(y.device)
    yf = y.flatten(1).double()
    scores = [_scores(operator, G(part, cls), yf) for part, cls in zip(pool.split(chunk), ids.split(chunk))]
    return pool, torch.cat(scores, 1).argsort(1), ids


def _class_code(run, c):
    """The class input of a parametrization: a :class:`ClassVector` started from ``c`` when the
    class is optimized, else ``c`` itself (given labels or None)."""
    return ClassVector.from_class(c, run.G.n_classes) if run.opts.optimize_class else c


class _Row:
    """Sample ``b``'s view of an operator, for batches of candidates (per-sample operators are
    applied to a full batch and row ``b`` is kept)."""

    def __init__(self, operator, b: int):
        self.operator, self.b, self.batch_size = operator, b, None
        self.per = _per_sample(operator)

    def __call__(self, x):
        if not self.per:
            return self.operator(x)
        n = self.operator.batch_size
        return torch.stack([self.operator(img.expand(n, *img.shape))[self.b] for img in x])


# ----------------------------------------------------------------------------- methods
@dataclass
class Run:
    G: Any
    y: torch.Tensor
    operator: Callable
    loss_fn: Callable
    opts: Any
    tracker: Tracker
    callbacks: Sequence[Callable]
    bar: Any
    seed: int
    c: Optional[torch.Tensor]

    stopped: bool = False
    pool_classes: Optional[torch.Tensor] = None  # (n_init,) class ids of the initial pairs, if drawn

    def loop(self, param, y, steps, lrs_at, on_step=None, operator=None) -> bool:
        self.stopped = optimize(param, y, operator or self.operator, self.loss_fn, steps=steps, lrs_at=lrs_at,
                                betas=self.opts.betas, penalty=self.opts.penalty, tracker=self.tracker,
                                callbacks=self.callbacks, bar=self.bar, on_step=on_step)
        return self.stopped

    def pool(self):
        o = self.opts
        if self.c is None and o.optimize_class:  # (latent, class) pairs: start from the best pair's class
            pool, order, self.pool_classes = _init_pool_classes(self.G, self.y, self.operator, o.n_init,
                                                                o.init_chunk, self.seed)
            self.c = self.pool_classes[order[:, 0]]
            return pool, order
        return _init_pool(self.G, self.y, self.operator, o.n_init, o.init_chunk, self.seed, self.c)


class _Subset:
    """An operator seen by the samples ``idx`` of a batch of ``B`` (per-sample operators get the
    full batch, zero-padded)."""

    def __init__(self, operator, idx: torch.Tensor, batch: int):
        self.operator, self.idx, self.batch = operator, idx, batch
        self.batch_size = len(idx) if _per_sample(operator) else None

    def __call__(self, x):
        if not _per_sample(self.operator) or len(self.idx) == self.batch:
            return self.operator(x)
        full = x.new_zeros((self.batch, *x.shape[1:]))
        full = full.index_copy(0, self.idx, x)
        return self.operator(full).index_select(0, self.idx)


def _run_latent(run: Run):
    """Attempts: parallel starts, Adam, LM polish; samples still above ``restart_above`` try again
    from their next-best initial codes, up to ``restarts`` times, with twice the starts each time
    (only those samples run, so the escalation costs little when most samples are done)."""
    pool, order = run.pool()
    return _latent_attempts(run, pool, order)


def _latent_attempts(run: Run, pool, order):
    """The attempts of :func:`_run_latent` from the ranked initial codes ``pool[order]``."""
    o, B = run.opts, run.y.shape[0]
    todo = torch.arange(B, device=run.y.device)
    used = 0
    for attempt in range(1 + o.restarts):
        m = min(o.n_starts * 2 ** attempt, order.shape[1])  # each retry doubles its parallel starts
        first = min(used, order.shape[1] - m)
        used = first + m
        _attempt(run, pool, order[todo, first:first + m], todo)
        if run.stopped:
            break
        todo = todo[run.tracker.best_loss[todo] > o.restart_above]
        if len(todo) == 0:
            break
        run.bar.total = (run.bar.total or 0) + o.steps + (o.refine_steps if _refinable(run, o) else 0)
    if len(todo) and not run.stopped and _refinable(run, o):
        _lm_starts(run, pool, order, todo)
    run.tracker.sub = None
    return run.tracker.state, None


def _lm_starts(run: Run, pool, order, todo) -> None:
    """Last resort for samples ``todo`` still above ``restart_above`` after the Adam attempts:
    Levenberg-Marquardt straight from their best initial codes, one start after another (up to
    ``lm_starts``, ``lm_steps`` each), until each sample is below ``restart_above``. Gauss-Newton
    steps follow the narrow curved valleys where Adam stalls (SR x4 on a face GAN: Adam stalls
    from the same initial codes from which LM reaches the exact solution)."""
    o, B = run.opts, run.y.shape[0]
    for j in range(min(o.lm_starts, order.shape[1])):
        cs = _start_classes(run, order[todo, j:j + 1], todo)
        run.tracker.sub = todo
        run.bar.total = (run.bar.total or 0) + o.lm_steps
        _refine(run, pool[order[todo, j]], run.y.index_select(0, todo), _Subset(run.operator, todo, B),
                None if cs is None else _class_code(run, cs[:, 0]), steps=o.lm_steps)
        todo = todo[run.tracker.best_loss[todo] > o.restart_above]
        if run.stopped or len(todo) == 0:
            break


def _attempt(run: Run, pool, ranks, idx) -> None:
    """One attempt for samples ``idx`` from candidates ``pool[ranks]`` ``(S, m)``."""
    o, m = run.opts, ranks.shape[1]
    y, cs = run.y.index_select(0, idx), _start_classes(run, ranks, idx)
    op = _Subset(run.operator, idx, run.y.shape[0])
    lrs = _schedule(o, o.steps, {"latent": o.lr, "class": o.lr_class})
    s1 = int(o.steps * o.select_at) if m > 1 else 0
    run.tracker.sub = None if len(idx) == run.y.shape[0] else idx
    z1, c = pool[ranks[:, 0]], None if cs is None else _class_code(run, cs[:, 0])
    if s1 > 0:  # parallel starts, then keep each sample's best
        start_c = None if cs is None else _class_code(run, cs.flatten(0, 1))
        starts = LatentCode(run.G, pool[ranks].flatten(0, 1), start_c)
        run.tracker.group = m
        stopped = run.loop(starts, y.repeat_interleave(m, 0), s1, lrs, operator=_Repeated(op, m))
        run.tracker.group = 1
        if stopped:
            return
        with torch.no_grad():
            fit = run.loss_fn(_Repeated(op, m)(starts()), y.repeat_interleave(m, 0)).view(-1, m)
            best = torch.where(torch.isfinite(fit), fit, torch.full_like(fit, float("inf"))).argmin(1)
            z1 = starts.z.detach().view(len(idx), m, *starts.z.shape[1:])[torch.arange(len(idx)), best]
            if isinstance(starts.c, ClassVector):  # the best start's class vector goes on with it
                c = starts.c.take(torch.arange(len(idx), device=best.device) * m + best)
    code = LatentCode(run.G, z1, c)
    if run.loop(code, y, o.steps - s1, lambda t: lrs(t + s1), operator=op):
        return
    if _refinable(run, o):
        _refine(run, code.z.detach().clone(), y, op, code.c)


def _schedule(o, steps: int, peaks: dict):
    """``t -> {group: rate}``: each group's peak rate times one warm-up / cool-down factor
    (:func:`restore.optim.ramp_lr` with ``o.lr_rampup``, ``o.lr_rampdown``) at ``t / steps``."""
    def lrs(t):
        f = ramp_lr(t / max(1, steps), 1.0, o.lr_rampup, o.lr_rampdown)
        return {group: peak * f for group, peak in peaks.items()}
    return lrs


def _start_classes(run, ranks, idx):
    """The initial class of each start ``(S, m)`` ids or ``(S, m, n_classes)``: the drawn pair's
    class when the classes were drawn with the pool, else sample ``idx``'s given ``c``; or None."""
    if run.pool_classes is not None:
        return run.pool_classes[ranks]
    if run.c is None:
        return None
    c = run.c.index_select(0, idx)
    return c[:, None].expand(c.shape[0], ranks.shape[1], *c.shape[1:])


def _refinable(run, o) -> bool:
    return (o.refine_steps > 0 and o.penalty == 0 and run.loss_fn is mse
            and run.G.latent_shape and int(torch.tensor(run.G.latent_shape).prod()) <= o.refine_max_dim)


def _refine(run: Run, z, y, op, c, steps: Optional[int] = None) -> None:
    """Levenberg-Marquardt polish from codes ``z``; every evaluation is tracked like a step. A
    :class:`ClassVector` ``c`` stays fixed at its current probabilities (LM polishes ``z`` only).
    A sample leaves once its loss falls below 1e-12 or has fallen by less than 1% over the last
    10 steps (a local minimum, or the floor of an observation no code fits exactly)."""
    G = run.G
    c, extra = (c().detach(), {"class": c().detach()}) if isinstance(c, ClassVector) else (c, {})

    def on_step(t, fit, ok, z_now):
        image = G(z_now, c)
        cur_fit, cur_image, step = run.tracker.update(fit, ok, image, {"z": z_now, **extra})
        run.bar.update(1)
        state = StepState(step, cur_fit, cur_image)
        run.stopped = any(bool(cb(state)) for cb in run.callbacks)
        return run.stopped

    def f(zz, idx):
        return _Subset(op, idx, len(y))(G(zz, None if c is None else c.index_select(0, idx)))

    levenberg_marquardt(f, z, y, run.opts.refine_steps if steps is None else steps, on_step=on_step)


def _run_mgan(run: Run):
    """Optional latent warm start (``warm_start`` of the steps, see :func:`_warm_start`), then the
    ``N`` codes mixed at the split block: code 0 is the warm start's best code (or the best initial
    code by data fit), the others the next-best initial codes."""
    o = run.opts
    pool, order = run.pool()
    split = o.split if o.split is not None else default_split(run.G)
    codes, c, warm = pool[order[:, :o.n_codes]], run.c, int(o.steps * o.warm_start)
    if warm > 0:
        if _warm_start(run, pool, order, warm):
            return run.tracker.state, None
        codes = torch.cat([run.tracker.state["z"][:, None], codes[:, :-1]], 1)
        c = run.tracker.state.get("class", c)
    steps = o.steps - warm
    mc = MultiCode(run.G, codes, split, _class_code(run, c), o.init_importance)
    run.loop(mc, run.y, steps, _schedule(o, steps, {"latent": o.lr, "importance": o.lr_importance, "class": o.lr_class}))
    state = dict(run.tracker.state)
    state.pop("z", None)  # the warm start's code lives on as codes[:, 0]
    return state, None


def _warm_start(run: Run, pool, order, steps: int) -> bool:
    """The ``latent`` method's attempts (parallel starts, restarts, LM polish) for ``steps`` Adam
    steps with mgan's warm-start options; the best code is left in ``run.tracker.state["z"]``.
    Returns True when a callback stopped the solve."""
    o = run.opts
    shared = {f.name: getattr(o, f.name) for f in dataclasses.fields(LatentOptions)
              if hasattr(o, f.name) and f.name not in ("steps", "lr")}
    sub = dataclasses.replace(run, opts=LatentOptions(**shared, steps=steps, lr=o.lr_warm))
    _latent_attempts(sub, pool, order)
    run.stopped = sub.stopped
    return run.stopped


def _run_dgp(run: Run):
    o = run.opts
    pool, order = run.pool()
    n_blocks = len(run.G.blocks)
    dp = DeepPrior(run.G, pool[order[:, 0]], max(s.blocks for s in o.stages), _class_code(run, run.c))
    for st in o.stages:
        if st.lr_generator > 0:
            dp.unfreeze(st.blocks)
        blocks = [i for i, _ in dp.block_names if i < min(st.blocks, n_blocks)]

        def lrs(t, st=st, blocks=blocks):
            f = ramp_lr(t / max(1, st.steps), 1.0, 0.0, 0.3)
            return {"latent": st.lr_latent * f, "class": o.lr_class * f,
                    **{f"block{i}": st.lr_generator * f for i in blocks}}

        dp_state = dp.state if o.keep_best_params else (lambda: dp.state(with_params=False))
        stopped = run.loop(_StateView(dp, dp_state), run.y, st.steps, lrs)
        if stopped:
            break
        if not dp.touched and _refinable(run, o) and _next_tunes(o.stages, st):
            _refine(run, dp.z.detach().clone(), run.y, run.operator, dp.c)  # polish before fine-tuning
            with torch.no_grad():
                dp.z.copy_(run.tracker.state["z"])
                if isinstance(dp.c, ClassVector):  # the best iterate's class goes on with its z
                    dp.c.set_probabilities(run.tracker.state["class"])
            if run.stopped:
                break
    state = dict(run.tracker.state)
    params = {k[len("param:"):]: state.pop(k) for k in list(state) if k.startswith("param:")}
    if not o.keep_best_params:
        params = {k: v.detach().clone() for k, v in dp.stacked(touched_only=True).items()}
    return state, {"params": params, "blocks": sorted(dp.touched)}


def _next_tunes(stages, st) -> bool:
    """Whether the stage after ``st`` fine-tunes generator blocks."""
    i = next(k for k, s in enumerate(stages) if s is st)
    return i + 1 < len(stages) and stages[i + 1].lr_generator > 0 and stages[i + 1].blocks > 0


class _StateView:
    """A parametrization whose ``state`` is replaced (DGP without best-parameter tracking)."""

    def __init__(self, param, state):
        self.param, self.state = param, state
        self.groups, self.penalty = param.groups, param.penalty

    def __call__(self):
        return self.param()


RUNNERS = {"latent": _run_latent, "mgan": _run_mgan, "dgp": _run_dgp}
