"""The three inversion methods over the one loop: initial codes by data fit, parallel starts,
restarts, Levenberg-Marquardt polish (latent); multi-code mixing (mgan); staged fine-tuning (dgp).

A method is three functions (:class:`Method`): ``setup(problem, opts) -> context`` draws the
initial codes and builds what it optimizes (no steps); ``run(problem, opts, tracker, context)``
runs its phases, every step recorded by the :class:`restore.loop.Tracker`;
``finish(opts, tracker, context) -> (latents, finetuned)`` reads the best iterate. A callback's
stop raises :class:`restore.loop.StopSolve` out of ``run``; :func:`restore.solve` catches it
and still calls ``finish``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict

import torch

from operators.batching import Subset
from priors.class_vector import ClassVector
from priors.dgp import DeepPrior
from priors.latent_code import LatentCode
from priors.multi_code import MultiCode, default_split

from .losses import mse
from .loop import Stopping, Tracker, optimize
from .optim import ramp_lr
from .options import METHODS, LatentOptions
from .problem import Pool, Problem, Rows, draw_pool
from .refine import levenberg_marquardt, step_passes

__all__ = ["Method", "SOLVERS"]


@dataclass(frozen=True)
class Method:
    """An inversion method: ``setup``, ``run`` and ``finish`` (see the module docstring)."""

    setup: Callable
    run: Callable
    finish: Callable


# ----------------------------------------------------------------------------- shared pieces
def _pool(problem: Problem, o) -> Pool:
    """The ranked initial codes; with ``optimize_class`` and no given classes, (latent, class) pairs."""
    return draw_pool(problem, o.n_init, o.init_chunk, draw_classes=problem.c is None and o.optimize_class)


def _class_code(o, G, c):
    """The class input of a parametrization: a :class:`ClassVector` started from ``c`` when the
    class is optimized, else ``c`` itself (given labels or None)."""
    return ClassVector.from_class(c, G.n_classes) if o.optimize_class else c


def _schedule(o, steps: int, peaks: dict):
    """``t -> {group: rate}``: each group's peak rate times one warm-up / cool-down factor
    (:func:`restore.optim.ramp_lr` with ``o.lr_rampup``, ``o.lr_rampdown``) at ``t / steps``."""
    def lrs(t):
        f = ramp_lr(t / max(1, steps), 1.0, o.lr_rampup, o.lr_rampdown)
        return {group: peak * f for group, peak in peaks.items()}
    return lrs


def _stopping(o) -> Stopping:
    return Stopping(tol=o.tol, window=o.stall_window, rtol=o.stall_rtol)


def _adam(problem: Problem, o, tracker: Tracker, param, rows: Rows, steps: int, lrs) -> None:
    optimize(param, rows, problem.loss, steps=steps, lrs_at=lrs, betas=o.betas, penalty=o.penalty,
             tracker=tracker, stopping=_stopping(o))


def _refinable(problem: Problem, o) -> bool:
    G = problem.G
    return (o.refine_steps > 0 and o.penalty == 0 and problem.loss is mse
            and G.latent_shape and int(torch.tensor(G.latent_shape).prod()) <= o.refine_max_dim)


def _step_cost(problem: Problem, o) -> int:
    """One LM step's cost in generator passes (:func:`restore.refine.step_passes`)."""
    return step_passes(int(torch.tensor(problem.G.latent_shape).prod()), o.cg_iters, o.jacobian)


def _polish_reserve(problem: Problem, o, left: float) -> float:
    """Passes kept for the LM polish out of ``left``: its ``refine_steps`` steps, at most half
    of what is left, and none when that is less than one step."""
    if not _refinable(problem, o):
        return 0.0
    cost = _step_cost(problem, o)
    reserve = min(o.refine_steps * cost, left / 2) if left < float("inf") else 0.0
    return reserve if reserve >= cost else 0.0


def _refine(problem: Problem, o, tracker: Tracker, z, rows: Rows, c, steps=None) -> None:
    """Levenberg-Marquardt polish (matrix-free, :mod:`restore.refine`) of codes ``z`` for
    ``rows`` (one row per sample), within the budget; every step is recorded with its cost in
    generator passes. A :class:`ClassVector` ``c`` stays fixed at its current probabilities (LM
    polishes ``z`` only). A sample leaves once its loss falls below ``tol`` (or its noise floor)
    or has fallen by less than 1% over the last 10 steps (a local minimum, or the floor of an
    observation no code fits exactly)."""
    G = problem.G
    c, extra = (c().detach(), {"class": c().detach()}) if isinstance(c, ClassVector) else (c, {})
    step_cost = _step_cost(problem, o)

    def on_step(t, fit, ok, z_now, passes):
        tracker.record(fit, ok, G(z_now, c), {"z": z_now, **extra}, rows, passes=passes)
        return tracker.left(rows) < step_cost

    def f(zz, idx):
        return Subset(rows.operator, idx, len(rows.y))(G(zz, None if c is None else c.index_select(0, idx)))

    if tracker.left(rows) >= step_cost:
        levenberg_marquardt(f, z, rows.y, o.refine_steps if steps is None else steps, on_step=on_step,
                            cg_iters=o.cg_iters, tol=rows.floor.clamp(min=o.tol).to(z.dtype), jacobian=o.jacobian)


# ----------------------------------------------------------------------------- latent
def _run_latent(problem: Problem, o, tracker: Tracker, pool: Pool) -> None:
    """Attempts within the budget: parallel starts, Adam, LM polish. A sample that is not done
    (an exact fit, or at its known noise floor) tries again from its next-best initial codes,
    with twice the starts (:func:`_stuck`); then Levenberg-Marquardt from the best initial codes
    of the samples still stuck."""
    n = pool.order.shape[1]
    todo = torch.arange(problem.batch, device=problem.y.device)
    used = 0
    for attempt in range(1 + o.restarts):
        left = tracker.left(problem.rows(todo))
        if left < 1:
            return
        m = min(o.n_starts * 2 ** attempt, n, int(left))  # each retry doubles its parallel starts
        first = min(used, n - m)
        used = first + m
        tracker.phase("latent" if attempt == 0 else f"restart {attempt}")
        _attempt(problem, o, tracker, pool, pool.order[todo, first:first + m], todo)
        todo = todo[_stuck(problem.floor[todo], o, tracker.best_loss[todo], problem.y[0].numel())]
        if len(todo) == 0:
            return
    if _refinable(problem, o) and o.lm_starts > 0:
        _lm_starts(problem, o, tracker, pool, todo)


def _stuck(floor, o, loss, m: int) -> torch.Tensor:
    """``(S,)`` which samples (noise floors ``floor`` ``(S,)``, best losses ``loss``, ``m``
    observed entries each) go on to another start: not done (an exact fit below ``tol``, or at
    the noise floor) and, with a known noise level, a loss above what noise explains: the MSE of
    pure noise is ``floor`` with relative std ``sqrt(2/m)``, so a loss ``spread`` such stds above
    the floor is a wrong basin (a sample at its floor never pays for a restart). Without a known
    noise level every sample that is not an exact fit goes on, within the budget: a local minimum
    and the floor of an out-of-range observation cannot be told apart from the loss (pass
    ``sigma``, or ``sigma="auto"``, to stop at the floor)."""
    floor = floor.to(loss)
    done = loss <= floor.clamp(min=o.tol)
    return ~done & ((floor == 0) | (loss > floor * (1 + o.spread * (2 / max(m, 1)) ** 0.5)))


def _lm_starts(problem: Problem, o, tracker: Tracker, pool: Pool, todo) -> None:
    """Last resort for samples ``todo`` still stuck after the Adam attempts: Levenberg-Marquardt
    straight from their best initial codes, one start after another (up to ``lm_starts``,
    ``lm_steps`` each, within the budget) until each sample is done. Gauss-Newton
    steps follow the narrow curved valleys where Adam stalls (SR x4 on a face GAN: Adam stalls
    from the same initial codes from which LM reaches the exact solution)."""
    for j in range(min(o.lm_starts, pool.order.shape[1])):
        tracker.phase(f"LM start {j + 1}")
        cs = pool.start_classes(problem, pool.order[todo, j:j + 1], todo)
        _refine(problem, o, tracker, pool.z[pool.order[todo, j]], problem.rows(todo),
                None if cs is None else _class_code(o, problem.G, cs[:, 0]), steps=o.lm_steps)
        todo = todo[tracker.best_loss[todo] > problem.floor[todo].to(tracker.best_loss).clamp(min=o.tol)]
        if len(todo) == 0 or tracker.left(problem.rows(todo)) < _step_cost(problem, o):
            break


def _attempt(problem: Problem, o, tracker: Tracker, pool: Pool, ranks, idx) -> None:
    """One attempt for samples ``idx`` ``(S,)`` from candidates ``pool.z[ranks]`` ``(S, m)``:
    ``m`` parallel starts for ``select_at`` of the Adam steps, the best one per sample goes on,
    then the LM polish."""
    G, m = problem.G, ranks.shape[1]
    cs = pool.start_classes(problem, ranks, idx)
    one = problem.rows(idx)
    polish = _polish_reserve(problem, o, tracker.left(one))
    share = 1 + (o.select_at * (m - 1) if m > 1 else 0)  # passes per Adam step, starts included
    steps = max(1, min(o.attempt_steps, int((tracker.left(one) - polish) / share)))
    lrs = _schedule(o, steps, {"latent": o.lr, "class": o.lr_class})
    s1 = int(steps * o.select_at) if m > 1 else 0
    z1, c = pool.z[ranks[:, 0]], None if cs is None else _class_code(o, G, cs[:, 0])
    if s1 > 0:  # parallel starts, then keep each sample's best
        start_c = None if cs is None else _class_code(o, G, cs.flatten(0, 1))
        starts = LatentCode(G, pool.z[ranks].flatten(0, 1), start_c)
        many = problem.rows(idx, group=m)
        with tracker.capped(tracker.left(one) - polish):
            _adam(problem, o, tracker, starts, many, s1, lrs)
        with torch.no_grad():
            fit = problem.loss(many.operator(starts()), many.y).view(-1, m)
            fit = torch.where(torch.isfinite(fit), fit, torch.full_like(fit, float("inf")))
            best = fit.argmin(1)
            z1 = starts.z.detach().view(len(idx), m, *starts.z.shape[1:])[torch.arange(len(idx)), best]
            if isinstance(starts.c, ClassVector):  # the best start's class vector goes on with it
                c = starts.c.take(torch.arange(len(idx), device=best.device) * m + best)
    code = LatentCode(G, z1, c)
    with tracker.capped(tracker.left(one) - polish):
        _adam(problem, o, tracker, code, one, steps - s1, lambda t: lrs(t + s1))
    if polish > 0:
        tracker.phase("polish" if len(idx) == problem.batch else "restart polish")
        _refine(problem, o, tracker, code.z.detach().clone(), one, code.c)


def _finish_latent(o, tracker: Tracker, pool: Pool):
    return tracker.state, None


# ----------------------------------------------------------------------------- mgan
def _run_mgan(problem: Problem, o, tracker: Tracker, pool: Pool) -> None:
    """Optional latent warm start (``warm_start`` of the steps, see :func:`_warm_start`), then the
    ``N`` codes mixed at the split block: code 0 is the warm start's best code (or the best initial
    code by data fit), the others the next-best initial codes."""
    G = problem.G
    split = o.split if o.split is not None else default_split(G)
    codes, c, warm = pool.z[pool.order[:, :o.n_codes]], pool.first_classes(problem), int(o.steps * o.warm_start)
    if warm > 0:
        found = _warm_start(problem, o, tracker, pool, warm)
        if "z" in found:  # (a budget too small for one warm step leaves the initial codes)
            codes = torch.cat([found["z"][:, None], codes[:, :-1]], 1)
            c = found.get("class", c)
    steps = o.steps - warm  # planned (the schedule); a sample's row stops when its own budget is spent
    tracker.phase("multi-code")
    mc = MultiCode(G, codes, split, _class_code(o, G, c), o.init_importance)
    _adam(problem, o, tracker, mc, problem.rows(), steps,
          _schedule(o, steps, {"latent": o.lr, "importance": o.lr_importance, "class": o.lr_class}))


def _warm_start(problem: Problem, o, tracker: Tracker, pool: Pool, passes: float) -> dict:
    """The ``latent`` method's attempts with mgan's warm-start options, within ``passes`` of the
    budget; returns the best iterate's ``z`` (and ``class``)."""
    shared = {f.name: getattr(o, f.name) for f in dataclasses.fields(LatentOptions)
              if hasattr(o, f.name) and f.name != "lr"}
    with tracker.capped(passes):
        _run_latent(problem, LatentOptions(**shared, lr=o.lr_warm), tracker, pool)
    return tracker.best("z", "class")


def _finish_mgan(o, tracker: Tracker, pool: Pool):
    state = dict(tracker.state)
    if "codes" in state:
        state.pop("z", None)  # the warm start's code lives on as codes[:, 0]
    return state, None


# ----------------------------------------------------------------------------- dgp
def _setup_dgp(problem: Problem, o) -> DeepPrior:
    pool = _pool(problem, o)
    return DeepPrior(problem.G, pool.z[pool.order[:, 0]], max(s.blocks for s in o.stages),
                     _class_code(o, problem.G, pool.first_classes(problem)))


def _run_dgp(problem: Problem, o, tracker: Tracker, dp: DeepPrior) -> None:
    """The stages in turn (latent only, then more and more blocks fine-tuned per sample); the
    latent is polished by LM before the first stage that fine-tunes blocks."""
    n_blocks, everyone = len(problem.G.blocks), problem.rows()
    for st in o.stages:
        if st.lr_generator > 0:
            dp.unfreeze(st.blocks)
        blocks = [i for i, _ in dp.block_names if i < min(st.blocks, n_blocks)]

        def lrs(t, st=st, blocks=blocks):
            f = ramp_lr(t / max(1, st.steps), 1.0, 0.0, 0.3)
            return {"latent": st.lr_latent * f, "class": o.lr_class * f,
                    **{f"block{i}": st.lr_generator * f for i in blocks}}

        polish = not dp.touched and _next_tunes(o.stages, st)
        reserve = _polish_reserve(problem, o, st.steps / 2) if polish else 0.0
        tracker.phase(f"stage {o.stages.index(st) + 1}/{len(o.stages)}")
        dp_state = dp.state if o.keep_best_params else (lambda: dp.state(with_params=False))
        _adam(problem, o, tracker, _StateView(dp, dp_state), everyone, st.steps - int(reserve), lrs)
        if reserve > 0:
            tracker.phase("polish")
            with tracker.capped(reserve):
                _refine(problem, o, tracker, dp.z.detach().clone(), everyone, dp.c)  # before fine-tuning
            with torch.no_grad():
                dp.z.copy_(tracker.state["z"])
                if isinstance(dp.c, ClassVector):  # the best iterate's class goes on with its z
                    dp.c.set_probabilities(tracker.state["class"])


def _finish_dgp(o, tracker: Tracker, dp: DeepPrior):
    state = dict(tracker.state)
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


SOLVERS: Dict[str, Method] = {
    "latent": Method(_pool, _run_latent, _finish_latent),
    "mgan": Method(_pool, _run_mgan, _finish_mgan),
    "dgp": Method(_setup_dgp, _run_dgp, _finish_dgp),
}
assert set(SOLVERS) == set(METHODS), "every method of restore.options.METHODS has a solver"
