"""``restore.solve``: restore images by inverting a GAN prior, with one optimization loop.

Three methods (:mod:`restore.methods`) share :func:`restore.loop.optimize` (forward, per-sample
data-fit loss, backward, per-sample Adam, best-iterate tracking, callbacks, progress bar):

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
    >>> res = restore.solve(x, identity, G, method="mgan", steps=20, seed=0, progress=False, n_codes=4,
    ...                     warm_start=0.0)  # the paper's cold start: exactly 20 steps
    >>> res.image.shape, res.history.shape
    (torch.Size([2, 3, 4, 4]), torch.Size([20, 2]))
"""
from __future__ import annotations

import contextlib
import dataclasses

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Sequence

import torch
from tqdm.auto import tqdm

from priors.class_vector import as_probabilities

from operators import LinearOperator
from operators.batching import Repeated, is_per_sample

from .consistency import apply_consistency
from .holdout import Restricted, holdout
from .losses import build_loss, mse
from .noise_model import estimate_sigma, noise_model
from .loop import StepState, StopSolve, Tracker
from .methods import SOLVERS
from .problem import Problem
from .options import DEFAULT_METHOD, as_dict, resolve

__all__ = ["solve", "Result", "StepState"]


@dataclass
class Result:
    """The outcome of :func:`solve`.

    image: ``(B, C, H, W)`` in ``[0, 1]``: each sample's kept iterate (the best by data fit, or by
        held-out error with ``validate``), made consistent with ``y`` (``consistency``).
    prior_image: ``(B, C, H, W)`` in ``[0, 1]``, the prior's own image of that iterate.
    loss: ``(B,)`` its data-fit loss. best_step: ``(B,)`` the step it was reached at.
    held_loss: ``(B,)`` its held-out MSE with ``validate``, else None.
    samples, spread: with ``average=K > 1``: ``(B, K, C, H, W)`` the ``K`` independent
        solutions (each made consistent) whose mean is ``image``, and ``(B, C, H, W)`` their
        per-pixel std; then ``image``/``prior_image`` are means, ``loss`` is the mean prior
        image's data fit, ``held_loss`` the copies' mean, and ``best_step``, ``latents``,
        ``finetuned["params"]`` have a copy axis after the batch (``(B, K, ...)``), ``history``
        is ``(steps run, B, K)``. Else None.
    sigma: ``(B,)`` the noise std the solve used (given, estimated with ``sigma="auto"``, or 1 in
        the whitened space of ``noise="poisson"``), else None.
    latents: ``{name: (B, ...)}`` codes of the best iterate (``z``; or ``codes``, ``importance``
        and maybe ``tail`` for mgan; with ``optimize_class`` also ``class``, the class vector
        ``(B, n_classes)`` of probabilities). history: ``(steps run, B)`` data-fit loss at each step.
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
    prior_image: Optional[torch.Tensor] = None
    held_loss: Optional[torch.Tensor] = None
    sigma: Optional[torch.Tensor] = None
    samples: Optional[torch.Tensor] = None
    spread: Optional[torch.Tensor] = None



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



def _check_arguments(y, operator, prior, steps, seed, callbacks, device) -> None:
    """Raise ``TypeError`` for an argument of the wrong kind, before anything runs."""
    import numbers

    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch tensor (B, ...) as the operator outputs it, got {type(y).__name__}")
    missing = [a for a in ("channels", "resolution", "in_space", "sample_latents") if not hasattr(prior, a)]
    if missing:
        raise TypeError(f"prior must be a priors.Generator (priors.load(NAME), or priors.wrap(network, "
                        f"latent_shape) for your own), got {type(prior).__name__} without {', '.join(missing)}")
    if not callable(operator):
        raise TypeError(f"operator must be a callable (B, C, H, W) -> (B, ...), e.g. an operators object, "
                        f"got {type(operator).__name__}")
    for name, value in (("steps", steps), ("seed", seed)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise TypeError(f"{name} must be an int or None, got {value!r}")
    if callable(callbacks) or not all(callable(f) for f in callbacks):
        raise TypeError(f"callbacks must be a sequence of callables (StepState -> bool), got {callbacks!r}")
    if device is not None:
        try:
            torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device must be e.g. 'cpu', 'cuda' or 'cuda:0' (or a torch.device), got {device!r}") from err


def _check_observes(y, operator, prior) -> None:
    """Raise ``ValueError`` naming the samples the operator observes nothing of (it maps a random
    image to all zeros, e.g. an all-black mask): there is nothing to restore them from."""
    img = torch.rand(y.shape[0], prior.channels, prior.resolution, prior.resolution,
                     generator=torch.Generator().manual_seed(0)).to(y.device)
    with torch.no_grad():
        out = operator(img)
    blind = (out.detach().reshape(out.shape[0], -1) == 0).all(1)
    if bool(blind.any()):
        bad = torch.nonzero(blind).flatten().tolist()
        raise ValueError(f"the operator observes nothing of sample(s) {bad} (it maps every image to zeros, "
                         "e.g. an all-zero mask): there is nothing to restore from; check the mask is not inverted "
                         "(1 = observed)")


def _check_class_option(opts, prior, c) -> None:
    """Raise ``ValueError`` when ``optimize_class`` meets an unconditional prior or a ``c`` that
    cannot start a class vector."""
    if not opts.optimize_class:
        return
    n = int(getattr(prior, "n_classes", 0) or 0)
    if n == 0:
        raise ValueError(f"optimize_class=True needs a class-conditional prior (n_classes > 0), got "
                         f"{type(prior).__name__} with n_classes={n}")
    if c is not None:
        as_probabilities(c, n)


def _check_finite(y: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the samples of ``y`` that hold NaN or inf."""
    finite = torch.isfinite(y.detach()).reshape(y.shape[0], -1).all(1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(f"y holds NaN or inf values in sample(s) {bad}: observations must be finite "
                         f"(mask missing entries with the operator instead)")


@contextlib.contextmanager
def _noise_fixed(G, seed: int):
    """Fix the prior's noise inputs (StyleGAN2) from ``seed`` for the solve, then put back the
    caller's noise so that ``prior(z)`` renders as before."""
    saved = [t.detach().clone() for t in G.noise_buffers()] if hasattr(G, "noise_buffers") else None
    G.set_noise_seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            G.set_noise(saved)


@contextlib.contextmanager
def _denormals_flushed():
    """CPU float arithmetic with denormal numbers flushed to zero during the solve, then the
    caller's setting back. Adam's second moments of fine-tuned weights (DGP) sink to denormals
    (gradients ~1e-20 squared), where a CPU's arithmetic is tens of times slower: flushing them
    made DGP's fine-tuning steps about 1.4x faster on 2 cores. Values below ~1e-38 become 0,
    far below anything a solve resolves."""
    was = bool((torch.tensor([1e-39]) * 1.0)[0] == 0)  # already flushing?
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was)


def _fresh_seed() -> int:
    return int(torch.Generator().seed() % (2 ** 31))


def solve(y: torch.Tensor, operator: Callable, prior, *, method: str = DEFAULT_METHOD, steps: Optional[int] = None,
          seed: Optional[int] = None, device=None, loss=None, callbacks: Sequence[Callable] = (),
          progress: bool = True, preset: str = "default", c: Optional[torch.Tensor] = None,
          sigma=None, noise: str = "gaussian", gain: Optional[float] = None, **options) -> Result:
    """Restore the images behind observations ``y`` by inverting the GAN ``prior``.

    Args:
        y: observations ``(B, ...)`` as ``operator`` outputs them; samples are solved
            independently (a sample's result does not depend on its batch mates) in one batch.
        operator: a callable ``(B, C, H, W) -> (B, ...)``, e.g. an ``operators`` operator.
        prior: a :class:`priors.Generator`.
        method: ``"latent"``, ``"mgan"`` or ``"dgp"``.
        steps: the budget of the whole solve, in generator passes per sample, every phase
            included (default: the preset's; for DGP the stages are rescaled). See
            :class:`restore.options.LatentOptions`; the progress bar counts them.
        seed: fixes every random choice (initial codes, noise); None draws one and records it.
        device: where to run; None uses ``y``'s device. When given, ``y``, the operator (when it is
            a module) and the prior are moved there.
        loss: ``"mse"`` (default), ``"l1"``, ``"lpips"``, ``"dfeat"``, a dict of weights over them,
            or a callable ``(A(G(.)), y) -> (B,)``; compared in observation space.
        callbacks: callables receiving a :class:`StepState`; returning True stops the solve.
        progress: show a tqdm bar with the mean loss.
        preset: ``"fast"``, ``"default"`` or ``"quality"`` (see :mod:`restore.options`).
        c: class labels for a conditional prior, ``(B,)`` ids or ``(B, n_classes)``; kept fixed
            unless ``optimize_class=True``, which optimizes a soft class vector per sample jointly
            with the latent (as DGP does), starting from ``c`` or, when ``c`` is None, from the
            class of each sample's best-fitting random (latent, class) initial pair.
        sigma: the std of Gaussian noise in ``y``, if known: a sample stops at its noise floor
            (data-fit MSE ``sigma**2``, the discrepancy principle), never pays for restarts
            there, and the returned image is made consistent with the damped form. ``"auto"``
            estimates it per sample from the residual floor of a quick ``latent`` ``fast`` fit
            (:func:`restore.noise_model.estimate_sigma`). Needs the MSE loss.
        noise, gain: ``"gaussian"`` (default) or ``"poisson"`` with ``gain`` counts per unit
            intensity (``y = Poisson(gain * A x) / gain``): the fit is whitened per entry
            (:mod:`restore.noise_model`).
        **options: fields of the method's options dataclass; unknown names raise ``TypeError``.

    Returns:
        a :class:`Result` (``image`` in ``[0, 1]`` is each sample's best iterate).

    Raises:
        ValueError: ``y``, ``operator`` and ``prior`` do not fit (shapes or devices), or
            ``optimize_class`` is asked of an unconditional prior, before any work.
        TypeError: unknown options.
    """
    _check_arguments(y, operator, prior, steps, seed, callbacks, device)
    opts = resolve(method, preset, steps, **options)
    if device is not None:
        y = y.to(device)
        if isinstance(operator, torch.nn.Module):
            operator = operator.to(device)
        prior = prior.to(device)
        c = c.to(device) if isinstance(c, torch.Tensor) else c
    _check_inputs(y, operator, prior, c)
    _check_class_option(opts, prior, c)
    _check_finite(y)
    _check_observes(y, operator, prior)
    seed = _fresh_seed() if seed is None else int(seed)
    G = prior.in_space(opts.space)
    loss_fn = build_loss(loss, prior=G, device=y.device)
    model = noise_model(y.detach(), operator, sigma, noise, gain, mse_loss=loss_fn is mse)
    if sigma == "auto":
        model = dataclasses.replace(model, sigma=_auto_sigma(model, prior, seed, c, opts.space))
    y_fit, op_fit, held = _validation_split(model.y, model.operator, opts.validate, seed)
    problem = _copied(Problem(G, y_fit, op_fit, loss_fn, seed, c, floor=model.floor, held=held), opts.average)
    solver, stopped = SOLVERS[method], False
    with _denormals_flushed(), _noise_fixed(G, seed), tqdm(total=opts.steps, disable=not progress, desc=f"restore[{method}]",
                                     leave=False) as bar:
        tracker = Tracker(problem.batch, callbacks, bar, budget=opts.steps, name=f"restore[{method}]")
        context = solver.setup(problem, opts)
        try:
            solver.run(problem, opts, tracker, context)
        except StopSolve:
            stopped = True
        state, finetuned = solver.finish(opts, tracker, context)
        tracker.finish()
    history = torch.stack(tracker.history) if tracker.history else torch.zeros(0, problem.batch)
    prior_image = tracker.image.clamp(0, 1)
    result = Result(image=_consistent_copies(prior_image, model, opts.consistency, opts.average),
                    loss=tracker.kept_fit, best_step=tracker.best_step, latents=dict(state), history=history,
                    options={"method": method, "seed": seed, "loss": loss, "sigma": sigma, "noise": noise,
                             "gain": gain, **as_dict(opts)},
                    finetuned=finetuned, nonfinite_steps=tracker.nonfinite, stopped_early=stopped,
                    prior_image=prior_image, held_loss=tracker.best_score if held is not None else None,
                    sigma=model.sigma)
    return result if opts.average == 1 else _averaged(result, opts.average, model, loss_fn)


def _repeat_rows(t: Optional[torch.Tensor], k: int) -> Optional[torch.Tensor]:
    """Each row of ``t`` ``(B, ...)`` ``k`` times in a row: ``(B * k, ...)``; None stays None."""
    return None if t is None else t.repeat_interleave(k, 0)


def _copied(problem: Problem, k: int) -> Problem:
    """``problem`` with each observation repeated ``k`` times (consecutive rows), the copies
    dealt disjoint initial candidates (``Problem.copies``); ``k == 1``: ``problem`` itself."""
    if k == 1:
        return problem
    rep = lambda t: _repeat_rows(t, k)  # noqa: E731
    view = lambda op: Repeated(op, k) if is_per_sample(op) else op  # noqa: E731 - a shared one takes any batch
    held = None if problem.held is None else (view(problem.held[0]), rep(problem.held[1]))
    return dataclasses.replace(problem, y=rep(problem.y), operator=view(problem.operator), c=rep(problem.c),
                               floor=rep(problem.floor), held=held, copies=k)


def _averaged(result: Result, k: int, model, loss_fn) -> Result:
    """Fold the ``B * k`` rows of an ``average=k`` solve into ``B`` observations: ``image`` and
    ``prior_image`` the copies' means, ``loss`` the data fit of the mean prior image,
    ``samples``/``spread`` the copies and their per-pixel std; per-row fields get a copy axis."""
    fold = lambda t: t.unflatten(0, (-1, k))  # noqa: E731
    samples, prior = fold(result.image), fold(result.prior_image).mean(1)
    with torch.no_grad():
        fit = loss_fn(model.operator(prior), model.y).detach().double()
    folded = lambda d: {n: fold(v) if isinstance(v, torch.Tensor) else v for n, v in d.items()}  # noqa: E731
    finetuned = None if result.finetuned is None else {**result.finetuned,
                                                       "params": folded(result.finetuned["params"])}
    return dataclasses.replace(
        result, image=samples.mean(1), prior_image=prior, loss=fit, best_step=fold(result.best_step),
        latents=folded(result.latents), history=result.history.unflatten(1, (-1, k)), finetuned=finetuned,
        nonfinite_steps=fold(result.nonfinite_steps).sum(1),
        held_loss=None if result.held_loss is None else fold(result.held_loss).mean(1),
        samples=samples, spread=samples.std(1))


def _auto_sigma(model, prior, seed: int, c, space: str) -> torch.Tensor:
    """``(B,)`` noise std from the residual floor of a quick ``latent`` ``fast`` fit."""
    quick = solve(model.y, model.operator, prior, method="latent", preset="fast", seed=seed, c=c, space=space,
                  progress=False, consistency="none")
    entries = int(model.y[0].numel())
    return estimate_sigma(quick.loss, entries, int(torch.tensor(prior.in_space(space).latent_shape).prod()))


def _validation_split(y, operator, fraction: float, seed: int):
    """``(y_fit, operator_fit, held)``: with ``fraction > 0`` the views of a seeded split of the
    observed entries (:mod:`restore.holdout`), ``held = (operator_held, y_held)``; else ``y``,
    ``operator`` and None."""
    if fraction == 0:
        return y, operator, None
    if not isinstance(operator, LinearOperator):
        raise ValueError("validate needs an operators.LinearOperator (to know its observed entries), got "
                         f"{type(operator).__name__}")
    split = holdout(y, operator, fraction, seed)
    fit, held = Restricted(operator, split.fit).to(y.device), Restricted(operator, split.held).to(y.device)
    return fit.observe(y), fit, (held, held.observe(y))


def _consistent_copies(x, model, mode: str, k: int):
    """:func:`_consistent` of ``x`` ``(B * k, C, H, W)``, ``k`` consecutive copies per observation."""
    if k == 1:
        return _consistent(x, model, mode)
    if not is_per_sample(model.operator):  # one batched correction of all the copies
        return _consistent(x, _Observed(_repeat_rows(model.y, k), model.operator, _repeat_rows(model.sigma, k)), mode)
    return torch.stack([_consistent(part, model, mode) for part in x.unflatten(0, (-1, k)).unbind(1)], 1).flatten(0, 1)


class _Observed(NamedTuple):
    """What :func:`_consistent` reads of a model: ``y`` ``(B, *out)``, the operator, ``sigma`` ``(B,)`` or None."""

    y: torch.Tensor
    operator: object
    sigma: Optional[torch.Tensor]


@torch.no_grad()
def _consistent(x, model, mode: str):
    """The image ``x`` made consistent with the observation of ``model`` (``mode`` of
    ``consistency``), in ``[0, 1]``."""
    noisy = model.sigma is not None and bool((model.sigma > 0).any())
    if mode == "auto":
        mode = "none" if not isinstance(model.operator, LinearOperator) else "smooth"
    if mode == "none":
        return x
    if mode == "damped" and not noisy:
        raise ValueError("consistency='damped' needs the noise level: pass sigma > 0 (or noise='poisson')")
    return apply_consistency(x, model.y, model.operator, mode, sigma=model.sigma if noisy else None, clamp=True)
