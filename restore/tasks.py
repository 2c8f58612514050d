"""The four restoration tasks as the command line and batch runner see them.

A :class:`TaskOptions` says how to build a task's operator (mask kind, factor, number of
measurements...). :func:`build_operator` turns it into an ``operators`` object for a given
image shape, :func:`classical_baseline` gives the classical reconstruction each task is
compared with, and :func:`observation_view` an image of an observation for figures.

=========  ================================  =====================================
task       operator                          classical baseline
=========  ================================  =====================================
inpaint    ``Mask`` (file or generated)      biharmonic inpainting (scikit-image)
superres   ``Downsample(factor, "bicubic")`` bicubic upsampling
colorize   ``Grayscale()``                   the gray image copied to R, G and B
cs         ``CompressedSensing(m, ...)``     pseudo-inverse ``A^+ y``
=========  ================================  =====================================
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

import operators
from operators import CompressedSensing, Downsample, Grayscale, Mask, masks

from pathlib import Path

from .io import InputError, fit_image, load_alpha, load_image, load_observation, to_channels

__all__ = ["TASKS", "MASK_KINDS", "TaskOptions", "build_operator", "task_of", "classical_baseline",
           "observation_view", "classical_from_entries", "keep_observed", "check_observed", "alpha_mask", "BASELINE_NAMES", "observe_file", "clean_image", "simulate", "from_spec"]

TASKS = ("inpaint", "superres", "colorize", "cs")
MASK_KINDS = ("random", "box", "free-form")
BASELINE_NAMES = {"inpaint": "biharmonic", "superres": "bicubic", "colorize": "gray copy", "cs": "pseudo-inverse"}


@dataclass(frozen=True)
class TaskOptions:
    """How to build a task's operator.

    task: one of :data:`TASKS`.
    mask: a mask image path (inpaint; white = observed, black = missing), or ``None`` to generate
        one of ``mask_kind``: ``"random"`` pixels keeping the fraction ``keep``, a centred
        ``"box"`` hole of side ``size`` (default half the image), or ``"free-form"`` strokes.
    factor: super-resolution factor (the image side must be divisible by it).
    m: compressed-sensing measurements (default 10% of the pixels); ``cs_kind`` "gaussian"|"srht".
    """

    task: str
    mask: Optional[str] = None
    mask_kind: str = "random"
    keep: float = 0.2
    size: Optional[int] = None
    factor: int = 4
    m: Optional[int] = None
    cs_kind: str = "gaussian"

    def __post_init__(self):
        if self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.mask_kind not in MASK_KINDS:
            raise InputError(f"unknown mask kind {self.mask_kind!r}; choose one of {', '.join(MASK_KINDS)}")
        if not 0.0 < self.keep <= 1.0:
            raise InputError(f"--keep must be a fraction in (0, 1] of pixels kept, got {self.keep}")
        if int(self.factor) != self.factor or self.factor < 1:
            raise InputError(f"--factor must be a positive integer, got {self.factor}")
        if self.cs_kind not in ("gaussian", "srht"):
            raise InputError(f"--cs-kind must be 'gaussian' or 'srht', got {self.cs_kind!r}")


def build_operator(opts: TaskOptions, shape: Tuple[int, int, int], *, seed: Optional[int] = None,
                   fit: str = "resize", warn: Optional[Callable[[str], None]] = None):
    """The operator of ``opts.task`` for clean images ``shape = (C, H, W)``.

    ``seed`` drives random masks and compressed-sensing matrices; a mask file is fitted to
    ``(H, W)`` like an input image (``fit`` = "resize" | "error").
    """
    c, h, w = shape
    if opts.task == "inpaint":
        return Mask(_mask(opts, (h, w), seed, fit, warn))
    if opts.task == "superres":
        f = int(opts.factor)
        if h % f or w % f:
            raise InputError(f"--factor {f} does not divide the prior's {w}x{h} resolution; "
                             f"choose a divisor of {h}")
        return Downsample(f, kernel="bicubic")
    if opts.task == "colorize":
        if c != 3:
            raise InputError(f"colorize needs a colour (3-channel) prior; this prior has {c} channel(s)")
        return Grayscale()
    n = c * h * w
    m = opts.m if opts.m is not None else max(1, n // 10)
    if not 0 < m <= n:
        raise InputError(f"--m must be between 1 and the number of pixel values {n} ({c}x{h}x{w}), got {m}")
    return CompressedSensing(int(m), (c, h, w), kind=opts.cs_kind, seed=seed)


def _mask(opts: TaskOptions, hw: Tuple[int, int], seed, fit, warn) -> torch.Tensor:
    """A ``(1, 1, H, W)`` 0/1 float mask (1 = observed)."""
    if opts.mask is not None:
        raw = load_image(opts.mask, channels=1, what="mask")
        raw = fit_image(raw, hw, mode=fit, what="mask", warn=warn)
        m = masks.from_image(raw[0, 0].numpy(), threshold=0.5)
    elif opts.mask_kind == "random":
        m = masks.random_pixels(hw, keep=opts.keep, seed=seed)
    elif opts.mask_kind == "box":
        side = opts.size if opts.size is not None else min(hw) // 2
        if not 0 < side <= min(hw):
            raise InputError(f"--size (box side) must be between 1 and {min(hw)}, got {side}")
        m = masks.box(hw, size=side)
    else:
        m = masks.free_form(hw, seed=seed)
    out = torch.as_tensor(m, dtype=torch.float32).reshape(1, 1, *m.shape[-2:])
    check_observed(out, f"the mask {Path(opts.mask).name}" if opts.mask is not None else f"the {opts.mask_kind} mask", warn)
    out.seed = getattr(m, "seed", None)  # Mask(out).seed records a generated mask's seed
    return out


def check_observed(mask: torch.Tensor, what: str = "the mask", warn: Optional[Callable[[str], None]] = None) -> None:
    """Refuse a 0/1 ``mask`` that observes no pixel; warn when it observes under 1% of them."""
    kept, total = int((mask > 0.5).sum()), mask.numel()
    if kept == 0:
        raise InputError(f"{what} observes no pixel (all black: nothing to restore from); white = observed, "
                         "black = missing: check the mask is not inverted, or use a smaller hole")
    if kept < 0.01 * total:
        (warn or (lambda msg: warnings.warn(msg, stacklevel=3)))(
            f"warning: {what} observes only {kept} of {total} pixels ({kept / total:.2%}); "
            "the result will be mostly the prior's guess")


def alpha_mask(path, hw: Tuple[int, int], *, fit: str = "resize", warn: Optional[Callable[[str], None]] = None) -> Mask:
    """The inpainting operator whose holes are the transparent pixels (alpha < 0.5) of image ``path``."""
    alpha = fit_image(load_alpha(path), hw, mode=fit, what=f"{Path(path).name} (alpha)", warn=lambda _m: None)
    m = (alpha > 0.5).float()
    check_observed(m, f"the alpha channel of {Path(path).name}", warn)
    return Mask(m)


def task_of(op) -> str:
    """The task an operator belongs to (``"custom"`` for anything else, e.g. a composition)."""
    for cls, name in ((Mask, "inpaint"), (Downsample, "superres"), (Grayscale, "colorize"),
                      (CompressedSensing, "cs")):
        if isinstance(op, cls):
            return name
    return "custom"


@torch.no_grad()
def classical_baseline(op, y: torch.Tensor, shape: Tuple[int, int, int]) -> Tuple[str, torch.Tensor]:
    """``(name, x)``: the classical reconstruction of ``y`` ``(B, ...)`` as ``(B, C, H, W)`` in [0, 1]."""
    task = task_of(op)
    c, h, w = shape
    if task == "inpaint":
        return BASELINE_NAMES[task], _biharmonic(y, op)
    if task == "superres":
        up = F.interpolate(y.float(), size=(h, w), mode="bicubic", align_corners=False)
        return BASELINE_NAMES[task], up.clamp(0, 1)
    if task == "colorize":
        return BASELINE_NAMES[task], y.float().expand(-1, c, -1, -1).clamp(0, 1)
    return "pseudo-inverse", op.pinv(y).reshape(y.shape[0], c, h, w).clamp(0, 1)


def _biharmonic(y: torch.Tensor, op) -> torch.Tensor:
    from skimage.restoration import inpaint_biharmonic

    mask = op.mask.to(y.device).expand_as(y).cpu().numpy() < 0.5  # True where missing
    out = []
    for b in range(y.shape[0]):
        img = np.moveaxis(y[b].detach().cpu().double().numpy(), 0, -1)
        hole = mask[b].any(axis=0)
        out.append(inpaint_biharmonic(img, hole, channel_axis=-1) if hole.any() else img)
    arr = np.stack([np.moveaxis(o, -1, 0) for o in out])
    return torch.from_numpy(arr).float().clamp(0, 1).to(y.device)


@torch.no_grad()
def classical_from_entries(op, y: torch.Tensor, shape: Tuple[int, int, int], keep: torch.Tensor) -> torch.Tensor:
    """The classical answer ``(B, C, H, W)`` in [0, 1] from the ``keep`` entries of ``y`` only.

    ``keep``: bool ``(Bk, *units)`` as a :class:`restore.holdout.Split`'s ``fit`` (``Bk`` = 1 or
    ``B``). A ``Mask``: biharmonic inpainting with the dropped pixels as extra holes. Other
    image-shaped observations (super-resolution, colorization): the dropped pixels of ``y`` are
    filled by biharmonic inpainting of ``y``, then :func:`classical_baseline`. Anything else
    (compressed sensing): the pseudo-inverse of the restricted operator.
    """
    from .holdout import Restricted

    keep = torch.as_tensor(keep).to(y.device).bool()
    if task_of(op) == "inpaint":
        return _biharmonic(y, Mask(op.mask.to(y.device) * keep.float()))
    if y.dim() == 4 and task_of(op) in ("superres", "colorize"):
        filled = _biharmonic(y.float(), Mask(keep.float()))
        return classical_baseline(op, filled, shape)[1]
    view = Restricted(op, keep).to(y.device)
    return view.pinv(view.observe(y)).reshape(y.shape[0], *shape).clamp(0, 1)


@torch.no_grad()
def keep_observed(op, y: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """For inpainting, put the observed pixels of ``y`` back into ``image`` (the solver's output,
    ``(B, C, H, W)``): ``M y + (1 - M) x``; other operators return ``image`` unchanged."""
    if task_of(op) != "inpaint":
        return image
    m = op.mask.to(device=image.device, dtype=image.dtype)
    return (m * y.to(image) + (1 - m) * image).clamp(0, 1)


@torch.no_grad()
def observation_view(op, y: torch.Tensor) -> Optional[torch.Tensor]:
    """An image of observation ``y`` for figures (``None`` when it is not an image, e.g. CS)."""
    return y.float().clamp(0, 1) if y.dim() == 4 and task_of(op) != "cs" else None


def from_spec(spec: dict):
    """``operators.from_spec`` with a clear error for files this version cannot read."""
    try:
        return operators.from_spec(spec)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"the observation file's operator spec is not readable by this ganrestore ({err})") from err


def observe_file(path, opts: TaskOptions, shape: Tuple[int, int, int], *, seed: Optional[int] = None,
                 fit: str = "resize", warn: Optional[Callable[[str], None]] = None, op=None,
                 mask_from_alpha: bool = False):
    """``(y, operator)`` for an observed input file and a prior making images ``shape``.

    An ``.npz`` observation brings its own operator (checked against its ``y`` and ``shape``). An
    image is fitted to what the task observes: the low-resolution size for ``superres``, gray for
    ``colorize``, the masked image for ``inpaint`` (the mask is applied, so a clean photo works
    too). ``op``: a prebuilt operator to reuse (else built from ``opts`` and ``seed``).
    ``mask_from_alpha`` (inpaint): the holes are the image's transparent pixels.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        y, spec, info = load_observation(path)
        if info.get("task") and info["task"] != opts.task and warn is not None:
            warn(f"{path.name} holds a {info['task']!r} observation; restoring it with its own operator")
        return y, _check_fits(y, from_spec(spec), shape, path, warn)
    if opts.task == "cs":
        raise InputError(f"cs takes a measurements file (.npz), got {path}; make one with "
                         "`ganrestore degrade IMAGE --task cs -o y.npz`")
    c, h, _ = shape
    if mask_from_alpha and op is None:
        op = alpha_mask(path, (h, h), fit=fit, warn=warn)
    op = op if op is not None else build_operator(opts, shape, seed=seed, fit=fit, warn=warn)
    image_warn = (lambda _m: None) if mask_from_alpha else warn  # its alpha is the mask, not lost
    if opts.task == "superres":
        y = load_image(path, channels=c, warn=image_warn)
        return fit_image(y, h // int(opts.factor), mode=fit, what=f"{path.name} (low-resolution input)", warn=warn), op
    x = fit_image(load_image(path, warn=image_warn), h, mode=fit, what=path.name, warn=warn)
    if opts.task == "colorize":
        return to_channels(x, 1), op
    return op(to_channels(x, c)), op


def _check_fits(y: torch.Tensor, op, shape: Tuple[int, int, int], path: Path, warn) -> object:
    """``op`` when the observation file's ``y`` is what ``op`` makes of the prior's images ``shape``."""
    try:
        with torch.no_grad():
            expected = tuple(op(torch.zeros(1, *shape)).shape[1:])
    except (RuntimeError, ValueError) as err:
        raise InputError(f"{path}: its operator does not take this prior's {shape[2]}x{shape[1]} images "
                         f"({' '.join(str(err).split())}); use the prior the file was made for (--prior)") from err
    if tuple(y.shape[1:]) != expected:
        raise InputError(f"{path}: y has per-sample shape {tuple(y.shape[1:])} but its operator makes {expected} "
                         f"from this prior's images {shape}: the file is damaged or was made for another prior")
    if task_of(op) == "inpaint":
        check_observed(op.mask, f"the mask in {path.name}", warn)
    return op


def clean_image(path, shape: Tuple[int, int, int], *, fit: str = "resize",
                warn: Optional[Callable[[str], None]] = None, what: str = "") -> torch.Tensor:
    """A clean image file as ``(1, C, H, W)`` of the prior's ``shape`` (fitted)."""
    c, h, _ = shape
    x = load_image(path, channels=c, what=what or "image")
    return fit_image(x, h, mode=fit, what=what or Path(path).name, warn=warn)


def simulate(op, x: torch.Tensor, sigma: float = 0.0, seed: Optional[int] = None) -> torch.Tensor:
    """An observation ``A(x)``, plus Gaussian noise of std ``sigma`` drawn from ``seed``."""
    if sigma < 0:
        raise InputError(f"--noise-sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return op(x)
    from operators import GaussianNoise

    return op.degrade(x, noise=GaussianNoise(sigma, seed=seed))
