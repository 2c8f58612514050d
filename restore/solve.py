"""``restore.solve``: restore images by inverting a GAN prior, with one optimization loop.

Three methods share :func:`_loop` (forward, per-sample data-fit loss, backward, per-sample Adam,
best-iterate tracking, callbacks, progress bar):

* ``"latent"``: one code per sample (:class:`priors.latent_code.LatentCode`);
* ``"mgan"``: ``N`` codes mixed at a split block (:class:`priors.multi_code.MultiCode`);
* ``"dgp"``: a code plus per-sample fine-tuned blocks (:class:`priors.dgp.DeepPrior`), in stages.

Every sample is solved independently (its loss, its Adam moments, its restarts), but all of them
in one batched computation. Initial codes are the best of ``n_init`` seeded samples by data fit.

Example::

    >>> import torch
    >>> from torch import nn
    >>> import priors, restore
    >>> G = priors.wrap(nn.Sequential(nn.Linear(8, 48), nn.Tanh(), nn.Unflatten(1, (3, 4, 4))), (8,))
    >>> x = G(G.sample_latents(2, seed=1))
    >>> identity = lambda img: img
    >>> res = restore.solve(x, identity, G, method="latent", steps=20, seed=0, progress=False)
    >>> res.image.shape, res.history.shape
    (torch.Size([2, 3, 4, 4]), torch.Size([20, 2]))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch
from tqdm.auto import tqdm

from priors.dgp import DeepPrior
from priors.latent_code import LatentCode
from priors.multi_code import MultiCode, default_split

from .losses import build_loss, mse
from .refine import levenberg_marquardt
from .optim import MaskedAdam, grad_finite_rows, ramp_lr
from .options import as_dict, resolve

__all__ = ["solve", "Result", "StepState"]


@dataclass(frozen=True)
class StepState:
    """What a callback sees at each step: the step index, the data-fit loss per sample ``(B,)``
    and the current images ``(B, C, H, W)`` in ``[0, 1]`` (detached)."""

    step: int
    loss: torch.Tensor
    image: torch.Tensor


@dataclass
class Result:
    """The outcome of :func:`solve`.

    image: ``(B, C, H, W)`` in ``[0, 1]``, each sample's best iterate by data-fit loss.
    loss: ``(B,)`` that best data-fit loss. best_step: ``(B,)`` the step it was reached at.
    latents: ``{name: (B, ...)}`` codes of the best iterate (``z``; or ``codes``, ``importance``
        and maybe ``tail`` for mgan). history: ``(steps run, B)`` data-fit loss at each step.
    options: the resolved options plus ``method``, ``seed`` and ``loss``:
        ``solve(y, operator, prior, **result.options)`` reruns the same solve.
    finetuned: DGP only: ``{"params": {name: (B, ...)}, "blocks": [...]}`` fine-tuned weights of
        the best iterate (see :func:`priors.dgp.load_finetuned`); else None.
    nonfinite_steps: ``(B,)`` steps skipped per sample because its loss or gradient was not finite.
    stopped_early: a callback stopped the loop.
    """

    image: torch.Tensor
    loss: torch.Tensor
    best_step: torch.Tensor
    latents: dict
    history: torch.Tensor
    options: dict
    finetuned: Optional[dict]
    nonfinite_steps: torch.Tensor
    stopped_early: bool = False


class _Tracker:
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
            {k: pick(v) for k, v in state.items()}, ok.view(B, g).any(1)

    @torch.no_grad()
    def update(self, step: int, fit, ok, image, state):
        """Record step ``step`` for the samples ``self.sub`` (all when None); returns their
        current ``(loss, image)``."""
        score, fit_b, image, state, ok_b = self._reduce(fit, ok, image, state)
        idx = torch.arange(self.batch, device=fit.device) if self.sub is None else self.sub.to(fit.device)
        row = torch.full((self.batch,), float("nan"), dtype=fit.dtype)
        row[idx.cpu()] = torch.where(ok_b, fit_b, torch.full_like(fit_b, float("nan"))).cpu()
        self.history.append(row)
        self.nonfinite[idx.cpu()] += (~ok_b).cpu().long()
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
        return fit_b, image


def _where_rows(rows, new, old):
    return torch.where(rows.view(-1, *([1] * (new.dim() - 1))), new, old)


def _loop(param, y, operator, loss_fn, *, steps, lrs_at, betas, penalty, tracker, callbacks, bar,
          step0=0, on_step=None) -> bool:
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
        cur_fit, cur_image = tracker.update(step0 + t, fit.detach(), ok, image.detach(), param.state())
        opt.step(lrs_at(t), ok)
        if on_step is not None:
            on_step(t, fit.detach(), ok, opt)
        bar.update(1)
        if (step0 + t) % 10 == 0:
            bar.set_postfix(loss=f"{float(cur_fit[torch.isfinite(cur_fit)].mean()) if cur_fit.isfinite().any() else float('nan'):.3g}")
        state = StepState(step0 + t, cur_fit, cur_image)
        if any(bool(cb(state)) for cb in callbacks):
            return True
    return False


# ----------------------------------------------------------------------------- checks and init
def _device_of(obj) -> Optional[torch.device]:
    if isinstance(obj, torch.nn.Module):
        for t in list(obj.parameters()) + list(obj.buffers()):
            return t.device
    return None


def _check_inputs(y, operator, prior, c) -> None:
    """Raise ``ValueError`` naming all three shapes (and devices) unless they fit together."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() < 2:
        raise ValueError(f"y must be a float tensor (B, ...) as the operator outputs it, got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    img = (prior.channels, prior.resolution, prior.resolution)
    op_in = getattr(operator, "input_shape", None)
    dev = {"y": y.device, "operator": _device_of(operator), "prior": _device_of(prior)}
    problems, expected = [], None
    if len({d.type + str(d.index if d.index is not None else 0) for d in dev.values() if d is not None}) > 1:
        problems.append(f"devices differ: {', '.join(f'{k} on {v}' for k, v in dev.items() if v is not None)}")
    elif op_in is not None and tuple(op_in) != img:
        problems.append(f"the operator expects images {tuple(op_in)}, the prior makes {img}")
    else:
        try:
            with torch.no_grad():
                expected = tuple(operator(torch.zeros(y.shape[0], *img, device=y.device)).shape[1:])
        except Exception as exc:  # noqa: BLE001 - reported with the shapes
            problems.append(f"the operator rejects the prior's images: {exc}")
        if expected is not None and tuple(y.shape[1:]) != expected:
            problems.append(f"y has per-sample shape {tuple(y.shape[1:])}, the operator outputs {expected}")
    if c is not None and (not isinstance(c, torch.Tensor) or c.shape[0] != y.shape[0]):
        problems.append(f"c must be a tensor with batch {y.shape[0]}, got "
                        f"{tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__}")
    if problems:
        raise ValueError(f"y {tuple(y.shape)}, operator input {tuple(op_in) if op_in else 'any'} -> output "
                         f"(B, *{expected}), prior images (B, *{img}) do not fit: " + "; ".join(problems))


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


def _scores(operator, images, yf, c_b=None):
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


def _fresh_seed() -> int:
    return int(torch.Generator().seed() % (2 ** 31))


# ----------------------------------------------------------------------------- methods
@dataclass
class _Run:
    G: Any
    y: torch.Tensor
    operator: Callable
    loss_fn: Callable
    opts: Any
    tracker: _Tracker
    callbacks: Sequence[Callable]
    bar: Any
    seed: int
    c: Optional[torch.Tensor]

    stopped: bool = False

    def loop(self, param, y, steps, lrs_at, step0=0, on_step=None, operator=None) -> bool:
        self.stopped = _loop(param, y, operator or self.operator, self.loss_fn, steps=steps, lrs_at=lrs_at, betas=self.opts.betas,
                     penalty=self.opts.penalty, tracker=self.tracker, callbacks=self.callbacks, bar=self.bar,
                     step0=step0, on_step=on_step)
        return self.stopped

    def pool(self):
        o = self.opts
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


def _run_latent(run: _Run):
    """Attempts: parallel starts, Adam, LM polish; samples still above ``restart_above`` try again
    from their next-best initial codes, up to ``restarts`` times."""
    o, B = run.opts, run.y.shape[0]
    pool, order = run.pool()
    todo = torch.arange(B, device=run.y.device)
    step0, m = 0, o.n_starts
    for attempt in range(1 + o.restarts):
        first = min(attempt * m, order.shape[1] - m)
        step0 = _attempt(run, pool, order[todo, first:first + m], todo, step0)
        if run.stopped:
            break
        todo = todo[run.tracker.best_loss[todo] > o.restart_above]
        if len(todo) == 0:
            break
        run.bar.total = (run.bar.total or 0) + o.steps + (o.refine_steps if _refinable(run, o) else 0)
    run.tracker.sub = None
    return run.tracker.state, None


def _attempt(run: _Run, pool, ranks, idx, step0: int) -> int:
    """One attempt for samples ``idx`` from candidates ``pool[ranks]`` ``(S, m)``; returns the
    next step index."""
    o, m = run.opts, ranks.shape[1]
    y, c = run.y.index_select(0, idx), None if run.c is None else run.c.index_select(0, idx)
    op = _Subset(run.operator, idx, run.y.shape[0])
    lrs = lambda t, off=0: {"latent": ramp_lr((t + off) / max(1, o.steps), o.lr, o.lr_rampup, o.lr_rampdown)}  # noqa
    s1 = int(o.steps * o.select_at) if m > 1 else 0
    run.tracker.sub = None if len(idx) == run.y.shape[0] else idx
    z1 = pool[ranks[:, 0]]
    if s1 > 0:  # parallel starts, then keep each sample's best
        starts = LatentCode(run.G, pool[ranks].flatten(0, 1), None if c is None else c.repeat_interleave(m, 0))
        run.tracker.group = m
        stopped = run.loop(starts, y.repeat_interleave(m, 0), s1, lrs, step0=step0, operator=_Repeated(op, m))
        run.tracker.group = 1
        if stopped:
            return step0 + s1
        with torch.no_grad():
            fit = run.loss_fn(_Repeated(op, m)(starts()), y.repeat_interleave(m, 0)).view(-1, m)
            best = torch.where(torch.isfinite(fit), fit, torch.full_like(fit, float("inf"))).argmin(1)
            z1 = starts.z.detach().view(len(idx), m, *starts.z.shape[1:])[torch.arange(len(idx)), best]
    code = LatentCode(run.G, z1, c)
    if run.loop(code, y, o.steps - s1, lambda t: lrs(t, s1), step0=step0 + s1, operator=op):
        return step0 + o.steps
    if _refinable(run, o):
        _refine(run, code.z.detach().clone(), y, op, c, step0 + o.steps)
    return step0 + o.steps + o.refine_steps


def _refinable(run, o) -> bool:
    return (o.refine_steps > 0 and o.penalty == 0 and run.loss_fn is mse
            and run.G.latent_shape and int(torch.tensor(run.G.latent_shape).prod()) <= o.refine_max_dim)


def _refine(run: _Run, z, y, op, c, step0: int) -> None:
    """Levenberg-Marquardt polish from codes ``z``; every evaluation is tracked like a step."""
    G = run.G

    def on_step(t, fit, ok, z_now):
        image = G(z_now, c)
        cur_fit, cur_image = run.tracker.update(step0 + t, fit, ok, image, {"z": z_now})
        run.bar.update(1)
        state = StepState(step0 + t, cur_fit, cur_image)
        run.stopped = any(bool(cb(state)) for cb in run.callbacks)
        return run.stopped

    def f(zz, idx):
        return _Subset(op, idx, len(y))(G(zz, None if c is None else c.index_select(0, idx)))

    levenberg_marquardt(f, z, y, run.opts.refine_steps, on_step=on_step)


def _run_mgan(run: _Run):
    o = run.opts
    pool, order = run.pool()
    split = o.split if o.split is not None else default_split(run.G)
    mc = MultiCode(run.G, pool[order[:, :o.n_codes]], split, run.c, o.init_importance)
    lrs = lambda t: {"latent": ramp_lr(t / max(1, o.steps), o.lr, o.lr_rampup, o.lr_rampdown),  # noqa: E731
                     "importance": ramp_lr(t / max(1, o.steps), o.lr_importance, o.lr_rampup, o.lr_rampdown)}
    run.loop(mc, run.y, o.steps, lrs)
    return run.tracker.state, None


def _run_dgp(run: _Run):
    o = run.opts
    pool, order = run.pool()
    n_blocks = len(run.G.blocks)
    dp = DeepPrior(run.G, pool[order[:, 0]], max(s.blocks for s in o.stages), run.c)
    done = 0
    for st in o.stages:
        if st.lr_generator > 0:
            dp.unfreeze(st.blocks)
        blocks = [i for i, _ in dp.block_names if i < min(st.blocks, n_blocks)]

        def lrs(t, st=st, blocks=blocks):
            f = ramp_lr(t / max(1, st.steps), 1.0, 0.0, 0.3)
            return {"latent": st.lr_latent * f, **{f"block{i}": st.lr_generator * f for i in blocks}}

        dp_state = dp.state if o.keep_best_params else (lambda: dp.state(with_params=False))
        stopped = run.loop(_StateView(dp, dp_state), run.y, st.steps, lrs, step0=done)
        done += st.steps
        if stopped:
            break
    state = dict(run.tracker.state)
    params = {k[len("param:"):]: state.pop(k) for k in list(state) if k.startswith("param:")}
    if not o.keep_best_params:
        params = {k: v.detach().clone() for k, v in dp.stacked(touched_only=True).items()}
    return state, {"params": params, "blocks": sorted(dp.touched)}


class _StateView:
    """A parametrization whose ``state`` is replaced (DGP without best-parameter tracking)."""

    def __init__(self, param, state):
        self.param, self.state = param, state
        self.groups, self.penalty = param.groups, param.penalty

    def __call__(self):
        return self.param()


_RUNNERS = {"latent": _run_latent, "mgan": _run_mgan, "dgp": _run_dgp}


def solve(y: torch.Tensor, operator: Callable, prior, *, method: str = "mgan", steps: Optional[int] = None,
          seed: Optional[int] = None, device=None, loss=None, callbacks: Sequence[Callable] = (),
          progress: bool = True, preset: str = "default", c: Optional[torch.Tensor] = None, **options) -> Result:
    """Restore the images behind observations ``y`` by inverting the GAN ``prior``.

    Args:
        y: observations ``(B, ...)`` as ``operator`` outputs them; samples are solved
            independently (a sample's result does not depend on its batch mates) in one batch.
        operator: a callable ``(B, C, H, W) -> (B, ...)``, e.g. an ``operators`` operator.
        prior: a :class:`priors.Generator`.
        method: ``"latent"``, ``"mgan"`` or ``"dgp"``.
        steps: total Adam steps (default: the preset's; for DGP the stages are rescaled).
        seed: fixes every random choice (initial codes, noise); None draws one and records it.
        device: where to run; None uses ``y``'s device. When given, ``y``, the operator (when it is
            a module) and the prior are moved there.
        loss: ``"mse"`` (default), ``"l1"``, ``"lpips"``, ``"dfeat"``, a dict of weights over them,
            or a callable ``(A(G(.)), y) -> (B,)``; compared in observation space.
        callbacks: callables receiving a :class:`StepState`; returning True stops the solve.
        progress: show a tqdm bar with the mean loss.
        preset: ``"fast"``, ``"default"`` or ``"quality"`` (see :mod:`restore.options`).
        c: class labels for a conditional prior, ``(B,)`` ids or ``(B, n_classes)``.
        **options: fields of the method's options dataclass; unknown names raise ``TypeError``.

    Returns:
        a :class:`Result` (``image`` in ``[0, 1]`` is each sample's best iterate).

    Raises:
        ValueError: ``y``, ``operator`` and ``prior`` do not fit (shapes or devices), before any work.
        TypeError: unknown options.
    """
    opts = resolve(method, preset, steps, **options)
    if device is not None:
        y = y.to(device)
        if isinstance(operator, torch.nn.Module):
            operator = operator.to(device)
        prior = prior.to(device)
        c = c.to(device) if isinstance(c, torch.Tensor) else c
    _check_inputs(y, operator, prior, c)
    seed = _fresh_seed() if seed is None else int(seed)
    G = prior.in_space(opts.space)
    G.set_noise_seed(seed)
    loss_fn = build_loss(loss, prior=G, device=y.device)
    tracker = _Tracker(y.shape[0])
    total = opts.steps + (getattr(opts, "refine_steps", 0) or 0)
    with tqdm(total=total, disable=not progress, desc=f"restore[{method}]", leave=False) as bar:
        run = _Run(G, y.detach(), operator, loss_fn, opts, tracker, tuple(callbacks), bar, seed, c)
        state, finetuned = _RUNNERS[method](run)
    history = torch.stack(tracker.history) if tracker.history else torch.zeros(0, y.shape[0])
    return Result(image=tracker.image.clamp(0, 1), loss=tracker.best_loss, best_step=tracker.best_step,
                  latents=dict(state), history=history,
                  options={"method": method, "seed": seed, "loss": loss, **as_dict(opts)},
                  finetuned=finetuned, nonfinite_steps=tracker.nonfinite,
                  stopped_early=run.stopped)
