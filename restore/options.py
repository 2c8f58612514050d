"""Solver options: one frozen dataclass per method, named presets, and their validation.

Every hyperparameter of :func:`restore.solve` lives here, so a :class:`restore.Result`'s
``options`` (a plain dict from :func:`as_dict`) is enough to rerun a solve exactly.

Example::

    >>> from restore.options import resolve
    >>> opts = resolve("latent", preset="fast", steps=50, lr=0.05)
    >>> opts.steps, opts.lr
    (50, 0.05)
    >>> resolve("latent", colour=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: unknown option(s) ['colour'] for method 'latent'; valid options: ...
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Tuple

__all__ = ["Stage", "LatentOptions", "MganOptions", "DgpOptions", "PRESETS", "METHODS", "PRESET_NAMES",
           "DEFAULT_METHOD", "resolve", "as_dict"]


@dataclass(frozen=True)
class Stage:
    """One DGP stage: ``steps`` Adam steps on the latent (``lr_latent``) and on the first
    ``blocks`` generator blocks (``lr_generator``); ``blocks=0`` optimizes the latent only."""

    steps: int
    lr_latent: float
    lr_generator: float
    blocks: int

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"Stage.steps must be an int >= 0, got {self.steps!r}")
        if not isinstance(self.blocks, int) or self.blocks < 0:
            raise ValueError(f"Stage.blocks must be an int >= 0 (leading blocks fine-tuned), got {self.blocks!r}")
        if self.lr_latent < 0 or self.lr_generator < 0:
            raise ValueError(f"Stage learning rates must be >= 0, got {self.lr_latent}, {self.lr_generator}")


@dataclass(frozen=True)
class _Common:
    """Options every method shares.

    steps: the solve's budget in generator passes per sample, every phase included (an Adam
        step of one row is one pass, of ``m`` parallel starts ``m``; a Levenberg-Marquardt step
        counts its passes, about ``cg_iters + 2``). For DGP: the sum of its stages' steps
        (read-only). The progress bar's total.
    n_init: random latents drawn (from ``seed``) to pick initial codes by data fit (MSE in
        observation space), evaluated in chunks of ``init_chunk``.
    space: the prior's latent space (``"z"``; StyleGAN2-like priors also ``"w"``, ``"w+"``).
    betas: Adam betas.
    optimize_class: conditional priors only: optimize each sample's class vector jointly, as DGP
        does (softmax of per-sample logits, :class:`priors.class_vector.ClassVector`), starting from
        the given ``c`` or, without one, from the class of the sample's best (latent, random class)
        initial pair; the result's ``latents["class"]`` holds the probabilities ``(B, n_classes)``.
    lr_class: peak Adam rate of the class logits (same warm-up / cool-down as the latent's; per
        stage for DGP). At 0.1 a logit moves about 0.1 per step, so a start class (99% of the mass)
        can yield to another one within some 30-60 steps.
    consistency: how the returned image is made consistent with the observation (linear
        operators, :mod:`restore.consistency`): ``"project"`` ``x + A⁺(y − A x)`` (the observed
        content comes from ``y`` exactly, the prior fills the null space), ``"damped"``
        ``x + A*(AA* + λI)⁻¹(y − A x)`` with ``λ`` from the noise level (needs ``sigma``),
        ``"smooth"`` ``x + K A*(A K A* + λI)⁻¹(y − A x)``: the residual interpolated into the
        unobserved entries by a smooth field (``K`` a correlation of ``1/16`` of the image side,
        shared by R, G and B at correlation 0.9, so mostly a brightness correction; ``λ`` 0
        noise-free, else from ``sigma``), ``"none"``, or ``"auto"``: smooth for an
        ``operators.LinearOperator`` (a plain callable gets none). On the real-photo benchmark's
        dev photos smooth beats project by 0.4-1.7 dB on 80% missing pixels, 3-5 dB on
        compressed sensing and 0.3-1.0 dB on colorization (where the projection's correction
        along the luma weights casts green or magenta), and ties on holes.
        ``Result.prior_image`` keeps the prior's own image.
    validate: self-validation: hold out this seeded fraction of the observed entries
        (:func:`restore.holdout.holdout`), fit the rest, and keep each sample's iterate (any phase,
        any DGP stage and step) with the lowest held-out error; the final consistency step uses
        every entry. 0 disables it (iterates are kept by data fit). Linear operators only.
    average: ``K`` independent solves per observation, batched (each from its own disjoint share
        of the ``n_init`` candidates, every copy with the whole ``steps`` budget), and the
        returned image is their pixel mean: an estimate of the posterior mean, which on real
        photos scores a higher PSNR than any single solution (the prior's guesses for what
        ``y`` does not determine disagree, and their mean shrinks towards what they share).
        ``Result.samples`` ``(B, K, C, H, W)`` keeps the copies and ``Result.spread`` their
        per-pixel std (an uncertainty map). 1: a single solve.
    tol: a sample whose data-fit loss is below ``tol`` is an exact fit and stops everywhere.
    stall_window, stall_rtol: an Adam phase stops a sample whose best loss fell by less than
        ``stall_rtol`` (relative) over ``stall_window`` steps; with a known noise level
        (``solve(..., sigma=...)``) it also stops once its loss reaches the noise floor
        ``sigma**2`` (the discrepancy principle: ``|A x - y|^2 = m sigma^2``).
    """

    steps: int = 600
    n_init: int = 256
    init_chunk: int = 128
    space: str = "z"
    betas: Tuple[float, float] = (0.9, 0.999)
    optimize_class: bool = False
    lr_class: float = 0.1
    consistency: str = "auto"
    validate: float = 0.0
    average: int = 1
    tol: float = 1e-12
    stall_window: int = 40
    stall_rtol: float = 1e-3


@dataclass(frozen=True)
class _Attempts(_Common):
    """How single-code attempts run (the ``latent`` method, and ``mgan``'s warm start).

    attempt_steps, n_starts, select_at: an attempt runs up to ``attempt_steps`` Adam steps: the
        best ``n_starts`` initial codes per sample in parallel for ``select_at`` of them, then
        each sample's best start alone; fewer when the budget (``steps``) is short. Then the
        Levenberg-Marquardt polish.
    refine_steps, jacobian, cg_iters: at most ``refine_steps`` Levenberg-Marquardt steps
        (:mod:`restore.refine`) after Adam, with the dense Jacobian or matrix-free (``cg_iters``
        conjugate-gradient iterations a step); ``jacobian="auto"`` is dense up to 256 latent
        entries (faster and exact there), matrix-free above; they
        run only for the MSE loss, without penalty, when the latent has at most
        ``refine_max_dim`` entries. A sample leaves once converged (loss < ``tol``) or stuck
        (its loss fell by less than 1% over 10 steps).
    restarts, spread: up to ``restarts`` more attempts, from the next-best initial codes with
        twice the parallel starts, for the samples that are not done (loss below ``tol`` or the
        noise floor). With a known noise level (``sigma``) only a sample whose loss is more than
        ``spread`` standard deviations of the noise's MSE above its floor (``sigma**2 (1 + spread
        sqrt(2/m))`` for ``m`` entries) restarts: a sample at its floor never pays for one. Without it every
        sample that is not an exact fit restarts within the budget (a local minimum and the
        floor of an out-of-range observation look alike; pass ``sigma="auto"`` to stop there).
    lm_starts, lm_steps: the last resort for samples still stuck after the attempts (same
        conditions as the polish): Levenberg-Marquardt straight from their best initial codes,
        up to ``lm_starts`` of them one after another, ``lm_steps`` steps each (0 disables),
        within the budget.
    """

    attempt_steps: int = 300
    n_starts: int = 4
    select_at: float = 0.25
    restarts: int = 2
    spread: float = 4.0
    refine_steps: int = 20
    jacobian: str = "auto"
    cg_iters: int = 20
    refine_max_dim: int = 10000
    lm_starts: int = 8
    lm_steps: int = 60


@dataclass(frozen=True)
class LatentOptions(_Attempts):
    """Single latent code per sample (the attempt options are :class:`_Attempts`').

    lr, lr_rampup, lr_rampdown: peak rate and the warm-up / cosine cool-down fractions of the
        schedule (:func:`restore.optim.ramp_lr`).
    penalty: weight of the latent-prior penalty ``(mean(z**2) - 1)**2`` (0 disables it).
    """

    steps: int = 16000
    lr: float = 0.3
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.3
    penalty: float = 0.0


@dataclass(frozen=True)
class MganOptions(_Attempts):
    """Multi-code GAN prior (Gu et al. 2020).

    n_codes: codes per sample; split: the block index ``k`` where their features mix
        (``None``: :func:`priors.multi_code.default_split`, a third of the blocks, at least 1).
    lr, lr_importance: peak rates for codes and for the per-code, per-channel importance.
    init_importance: ``"best"`` (all weight on code 0: the multi-code phase starts at ``G(z_0)``)
        or ``"uniform"`` (1/N).
    penalty: latent-prior penalty weight, as for ``latent``.
    warm_start: the fraction of the budget ``steps`` spent first on a single-code warm start:
        the ``latent`` method's attempts (peak rate ``lr_warm``; see :class:`_Attempts`), whose
        best code becomes code 0; the multi-code phase gets the rest of the budget. The multi-code phase then only
        adds what one code cannot fit, instead of searching from scattered random codes (which
        overfits under-determined observations). 0 starts the codes from the best initial
        samples by data fit, as the mGANprior paper does.
    """

    steps: int = 1000
    n_codes: int = 20
    split: Optional[int] = None
    lr: float = 0.1
    lr_importance: float = 0.01
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.3
    init_importance: str = "best"
    penalty: float = 0.0
    warm_start: float = 0.4
    lr_warm: float = 0.3
    restarts: int = 1
    lm_starts: int = 0


def _default_stages() -> Tuple[Stage, ...]:
    return (Stage(300, 0.1, 0.0, 0), Stage(40, 0.02, 2e-4, 1), Stage(40, 0.02, 2e-4, 2),
            Stage(40, 0.01, 1e-4, 3), Stage(40, 0.01, 1e-4, 5))


@dataclass(frozen=True)
class DgpOptions(_Common):
    """Deep generative prior (Pan et al. 2020): latent plus progressively unfrozen blocks.

    stages: a tuple of :class:`Stage`; ``blocks`` larger than the generator has are clipped.
    n_init: 500 candidates by default, as in the paper.
    keep_best_params: keep the fine-tuned weights of the best iterate (else the last ones).
    refine_steps, cg_iters, refine_max_dim: Levenberg-Marquardt polish of the latent (as for
        ``latent``) after the latent-only stages, before the first stage that fine-tunes blocks;
        it takes at most a quarter of that stage's steps (budget passes), and none when that is
        less than one LM step.
    """

    n_init: int = 500
    betas: Tuple[float, float] = (0.0, 0.999)
    stages: Tuple[Stage, ...] = field(default_factory=_default_stages)
    keep_best_params: bool = True
    penalty: float = 0.0
    refine_steps: int = 20
    jacobian: str = "auto"
    cg_iters: int = 20
    refine_max_dim: int = 10000

    def __post_init__(self):
        stages = tuple(Stage(**s) if isinstance(s, dict) else s for s in self.stages)
        if not stages or not all(isinstance(s, Stage) for s in stages):
            raise TypeError(f"stages must be a non-empty sequence of Stage, got {self.stages!r}")
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "steps", sum(s.steps for s in stages))


METHODS = {"latent": LatentOptions, "mgan": MganOptions, "dgp": DgpOptions}
"""The registry of method names (and their options); :mod:`restore.methods` and the CLI read it."""
DEFAULT_METHOD = "dgp"
PRESET_NAMES = ("fast", "default", "quality")


def _scaled_stages(factor: float) -> Tuple[Stage, ...]:
    return tuple(dataclasses.replace(s, steps=max(1, int(round(s.steps * factor)))) for s in _default_stages())


PRESETS = {
    "latent": {"fast": LatentOptions(steps=300, attempt_steps=150, n_init=128, n_starts=2, restarts=0,
                                     refine_steps=5, lm_starts=0),
               "default": LatentOptions(),
               "quality": LatentOptions(steps=5000, attempt_steps=600, n_init=512, n_starts=8, refine_steps=40,
                                        lm_starts=16, lm_steps=60)},
    "mgan": {"fast": MganOptions(steps=250, attempt_steps=100, n_codes=10, n_init=128, n_starts=2, restarts=0,
                                 refine_steps=0),
             "default": MganOptions(refine_steps=0),
             "quality": MganOptions(steps=3000, n_codes=30, n_init=512)},
    "dgp": {"fast": DgpOptions(n_init=128, stages=_scaled_stages(0.2), refine_steps=5),
            "default": DgpOptions(stages=_scaled_stages(0.2), average=4),
            "quality": DgpOptions(n_init=1000, stages=_scaled_stages(0.5), average=8)},
}


assert all(tuple(p) == PRESET_NAMES for p in PRESETS.values()), "every method has every preset"


def _check_values(opts) -> None:
    most = 100_000  # 50x the quality presets; more is a typo (10**9 steps would run for weeks)
    if opts.steps < 1:
        raise ValueError(f"steps must be >= 1 (for dgp: the stages' total), got {opts.steps}")
    if opts.steps > most:
        raise ValueError(f"steps must be at most {most} (for dgp: the stages' total), got {opts.steps}")
    if max(getattr(opts, k, 0) for k in ("refine_steps", "lm_steps", "restarts", "lm_starts")) > most:
        raise ValueError(f"restarts, refine_steps, lm_starts and lm_steps must be at most {most}")
    if opts.n_init > 1_000_000:
        raise ValueError(f"n_init must be at most 1000000 (initial samples drawn), got {opts.n_init}")
    if opts.n_init < 1 or opts.init_chunk < 1:
        raise ValueError(f"n_init and init_chunk must be >= 1, got {opts.n_init}, {opts.init_chunk}")
    if isinstance(opts, _Attempts) and getattr(opts, "warm_start", 1) > 0 and not 1 <= opts.n_starts <= opts.n_init:
        raise ValueError(f"n_starts must be in 1..n_init={opts.n_init}, got {opts.n_starts}")
    if not isinstance(opts.optimize_class, bool) or opts.lr_class < 0:
        raise ValueError(f"optimize_class must be a bool and lr_class >= 0, got {opts.optimize_class!r}, "
                         f"{opts.lr_class}")
    if min(getattr(opts, k, 0) for k in ("restarts", "refine_steps", "lm_starts", "lm_steps", "cg_iters")) < 0:
        raise ValueError("restarts, refine_steps, cg_iters, lm_starts and lm_steps must be >= 0")
    if getattr(opts, "jacobian", "auto") not in ("auto", "dense", "free"):
        raise ValueError(f"jacobian must be 'auto', 'dense' or 'free', got {opts.jacobian!r}")
    if isinstance(opts, _Attempts) and (opts.attempt_steps < 1 or opts.spread < 0):
        raise ValueError(f"attempt_steps must be >= 1 and spread >= 0, got {opts.attempt_steps}, {opts.spread}")
    if opts.consistency not in ("auto", "project", "damped", "smooth", "none"):
        raise ValueError(f"consistency must be 'auto', 'project', 'damped', 'smooth' or 'none', "
                         f"got {opts.consistency!r}")
    if isinstance(opts.average, bool) or not isinstance(opts.average, int) or not 1 <= opts.average <= 64:
        raise ValueError(f"average (independent solves per observation) must be an int in [1, 64], "
                         f"got {opts.average!r}")
    if not 0.0 <= opts.validate < 1.0:
        raise ValueError(f"validate (held-out fraction) must be in [0, 1), got {opts.validate}")
    if opts.tol < 0 or opts.stall_window < 1 or not 0 <= opts.stall_rtol < 1:
        raise ValueError(f"tol must be >= 0, stall_window >= 1 and stall_rtol in [0, 1), got {opts.tol}, "
                         f"{opts.stall_window}, {opts.stall_rtol}")
    if isinstance(opts, MganOptions):
        if not 0.0 <= opts.warm_start < 1.0:
            raise ValueError(f"warm_start must be a fraction of steps in [0, 1), got {opts.warm_start}")
        if not 1 <= opts.n_codes <= opts.n_init:
            raise ValueError(f"n_codes must be in 1..n_init={opts.n_init}, got {opts.n_codes}")
        if opts.init_importance not in ("best", "uniform"):
            raise ValueError(f"init_importance must be 'best' or 'uniform', got {opts.init_importance!r}")


def resolve(method: str, preset: str = "default", steps: Optional[int] = None, **options):
    """The options of ``method`` from ``preset``, with ``steps`` and ``options`` overriding.

    Raises ``ValueError`` for an unknown method or preset and ``TypeError`` for unknown option
    names (listing the valid ones).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    presets = PRESETS[method]
    if preset not in presets:
        raise ValueError(f"preset must be one of {sorted(presets)} for method {method!r}, got {preset!r}")
    cls = METHODS[method]
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for method {method!r}; valid options: {valid}")
    if steps is not None:
        if method == "dgp":
            options.setdefault("stages", _rescale(options.get("stages", presets[preset].stages), steps))
        else:
            options["steps"] = steps
    if "betas" in options:
        options["betas"] = tuple(options["betas"])
    opts = dataclasses.replace(presets[preset], **options)
    _check_values(opts)
    return opts


def _rescale(stages, steps: int) -> Tuple[Stage, ...]:
    """Stages scaled so their steps sum to exactly ``steps`` (largest-remainder rounding; with a
    budget smaller than the number of stages, the late stages get none)."""
    stages = tuple(Stage(**s) if isinstance(s, dict) else s for s in stages)
    total = sum(s.steps for s in stages) or 1
    exact = [s.steps * steps / total for s in stages]
    counts = [int(e) for e in exact]
    for i in sorted(range(len(stages)), key=lambda i: counts[i] - exact[i])[:steps - sum(counts)]:
        counts[i] += 1
    return tuple(dataclasses.replace(s, steps=n) for s, n in zip(stages, counts))


def as_dict(opts) -> dict:
    """A JSON-able dict of ``opts`` (stages become dicts); ``resolve(method, **d)`` rebuilds it."""
    return dataclasses.asdict(opts)
