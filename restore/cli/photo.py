"""``--fit full`` (the default) for inpaint, superres and colorize: the photo at its own resolution.

The input keeps its size; the prior sees a resized copy (or one ``--region``) and its image is
composed with the observation at full resolution by :func:`restore.fullres.restore_photo`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Tuple

import torch

from ..figures import Panel, psnr_caption, save_comparison
from ..fullres import Region, photo_task, restore_photo
from operators import Mask

from ..io import MIN_SIDE, load_image, load_observation, save_image, to_channels
from ..outputs import atomic_paths
from ..tasks import alpha_mask, build_operator, check_observed, classical_baseline, from_spec
from .common import Console, UserError, load_prior, resolve_device, solve_kwargs

__all__ = ["run_photo", "handles", "BIHARMONIC_LIMIT"]

BIHARMONIC_LIMIT = 200_000  # missing pixels above which the --compare figure skips the (slow) biharmonic baseline


def handles(args, task: str) -> bool:
    """Whether the full-resolution path restores this input: ``--fit full``, not cs, and an image
    or an ``.npz`` observation of a Mask, Downsample or Grayscale operator."""
    if getattr(args, "fit", "full") != "full" or task == "cs":
        return False
    if Path(args.input).suffix.lower() != ".npz" or not Path(args.input).exists():
        return True
    try:
        photo_task(from_spec(load_observation(args.input)[1]))
    except TypeError:
        return False
    return True


def _observation(args, task: str, G, console: Console) -> Tuple[torch.Tensor, object]:
    """``(y, operator)`` at the input's own size: an ``.npz`` observation or an image file."""
    from .commands import task_options

    from .commands import _mask_from_alpha

    path = Path(args.input)
    if path.suffix.lower() == ".npz":
        y, spec, _ = load_observation(path)
        return y, _check_npz_operator(y, from_spec(spec), path, console)
    opts = task_options(args, task)
    c, R = G.channels, G.resolution
    if task != "inpaint":
        build_operator(opts, (c, R, R))  # the prior-side checks (factor divides R, colour prior)
    alpha = _mask_from_alpha(args)
    photo = _check_size(load_image(path, channels=c if task == "superres" else None,
                                   warn=(lambda _m: None) if alpha else console.warn), path)
    if task == "superres":
        from operators import Downsample
        return photo, Downsample(int(opts.factor), kernel="bicubic")
    if alpha:
        op = alpha_mask(path, tuple(photo.shape[-2:]), fit="error", warn=console.warn)
    else:
        op = build_operator(opts, (c,) + tuple(photo.shape[-2:]), seed=args.seed, fit="resize", warn=console.warn)
    return to_channels(photo, 1 if task == "colorize" else c), op


def _check_size(photo: torch.Tensor, path: Path) -> torch.Tensor:
    h, w = photo.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise UserError(f"{path.name} is {w}x{h} pixels: too small to restore (at least {MIN_SIDE}x{MIN_SIDE})")
    return photo


def _check_npz_operator(y: torch.Tensor, op, path: Path, console: Console):
    """A Mask observation's mask must cover ``y`` and observe something."""
    if isinstance(op, Mask):
        if tuple(op.mask.shape[-2:]) != tuple(y.shape[-2:]):
            raise UserError(f"{path}: its mask is {op.mask.shape[-1]}x{op.mask.shape[-2]} but y is "
                            f"{y.shape[-1]}x{y.shape[-2]}: the file is damaged")
        check_observed(op.mask, f"the mask in {path.name}", console.warn)
    return op


def _truth(args, size: Tuple[int, int], channels: int, console: Console) -> Optional[torch.Tensor]:
    if not args.truth:
        return None
    x = load_image(args.truth, channels=channels, what="truth")
    if tuple(x.shape[-2:]) != tuple(size):
        raise UserError(f"truth {Path(args.truth).name} is {x.shape[-1]}x{x.shape[-2]} pixels but the output is "
                        f"{size[1]}x{size[0]}; give the clean image at the output's size (or use --fit crop)")
    return x


def run_photo(args, task: str) -> int:
    """Restore one input at its own resolution; writes the output image (and figure), prints a summary."""
    from .commands import _default_output, _metrics, check_outputs

    console = Console(args.quiet, args.json, hold=True)
    device = resolve_device(args.device)
    out = _default_output(args, task)
    targets = check_outputs(out, args.compare, inputs=(args.input, getattr(args, "mask", None), args.truth))
    kwargs = solve_kwargs(args, console)
    G = load_prior(args.prior, args.family, device, progress=console.progress)
    y, op = _observation(args, task, G, console)
    region = args.region.check(*y.shape[-2:], what=f"{Path(args.input).name}") if args.region else None
    factor = getattr(op, "factor", 1) if task == "superres" else 1
    channels = 3 if task == "colorize" else G.channels
    truth = _truth(args, (y.shape[-2] * factor, y.shape[-1] * factor), channels, console)
    console.flush()  # inputs read and checked: show the warnings before the long solve
    t0 = time.perf_counter()
    keep = getattr(args, "keep_observed", True)  # only inpainting offers the option
    res = restore_photo(y, op, G, region=region, keep_observed=keep, warn=console.warn, device=device, **kwargs)
    seconds = time.perf_counter() - t0
    image = res.image.detach().cpu()
    metrics = _metrics(image, truth)
    with atomic_paths(targets) as temps:  # the image and the figure: both or neither
        save_image(image, temps[0], atomic=False)
        if args.compare:
            _compare_figure(temps[1], task, op, y, image, truth)
    _summarize(console, args, task, out, res, image, G.resolution, metrics, seconds, keep, device)
    return 0


def _summarize(console: Console, args, task: str, out: Path, res, image, resolution: int, metrics: dict,
               seconds: float, keep: bool, device) -> None:
    """The one-line summary (stdout) and the ``--json`` report, with the ``resolution`` entry."""
    summary = (f"wrote {out} ({args.method}, {image.shape[-1]}x{image.shape[-2]}, {seconds:.1f} s"
               + (f", PSNR {metrics['psnr']:.2f} dB vs truth" if metrics else "") + ")")
    geo = res.geometry
    report = {"command": task, "output": str(out), "metrics": metrics, "seconds": round(seconds, 3),
              "resolution": {"output": list(image.shape[-2:]), "prior": resolution, "fit": "full",
                             "upscale": round(geo.upscale, 3),
                             "region": [geo.region.x, geo.region.y, geo.region.w, geo.region.h]},
              "options": dict(prior=args.prior, method=args.method, preset=args.preset, seed=args.seed,
                              keep_observed=keep, device=str(device),
                              solver=getattr(res.result, "options", {}))}
    if args.compare:
        report["compare"] = str(args.compare)
        summary += f"\nwrote {args.compare}"
    console.info(summary)
    console.report(report)


def _compare_figure(path, task: str, op, y: torch.Tensor, image: torch.Tensor, truth) -> Path:
    """Observation, classical baseline (at full resolution), result and truth."""
    shape = tuple(image.shape[1:])
    observed = op(y) if task == "inpaint" else y
    panels = [Panel("observation", observed.clamp(0, 1))]
    slow = task == "inpaint" and int((op.mask < 0.5).sum()) > BIHARMONIC_LIMIT
    if not slow:
        name, base = classical_baseline(op, observed, shape)
        panels.append(Panel(name, base, psnr_caption(base, truth)))
    panels.append(Panel("ganrestore", image, psnr_caption(image, truth)))
    if truth is not None:
        panels.append(Panel("truth", truth))
    h, w = image.shape[-2:]
    return save_comparison([panels], path, atomic=False, title=f"{task} at {w}x{h}: observation, classical, restored")


def parse_region(text: str) -> Region:
    """argparse type for ``--region X,Y,W,H``."""
    import argparse
    try:
        return Region.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))
