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
from ..io import load_image, load_observation, save_image, to_channels
from ..tasks import build_operator, classical_baseline, from_spec
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

    path = Path(args.input)
    if path.suffix.lower() == ".npz":
        y, spec, _ = load_observation(path)
        return y, from_spec(spec)
    opts = task_options(args, task)
    c, R = G.channels, G.resolution
    if task != "inpaint":
        build_operator(opts, (c, R, R))  # the prior-side checks (factor divides R, colour prior)
    if task == "superres":
        from operators import Downsample
        return load_image(path, channels=c), Downsample(int(opts.factor), kernel="bicubic")
    photo = load_image(path)
    op = build_operator(opts, (c,) + tuple(photo.shape[-2:]), seed=args.seed, fit="resize", warn=console.warn)
    return to_channels(photo, 1 if task == "colorize" else c), op


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
    from .commands import _check_writable_suffix, _default_output, _metrics

    console = Console(args.quiet, args.json, hold=True)
    device = resolve_device(args.device)
    out = _default_output(args, task)
    _check_writable_suffix(out, args.compare)
    G = load_prior(args.prior, args.family, device, progress=console.progress)
    y, op = _observation(args, task, G, console)
    region = args.region.check(*y.shape[-2:], what=f"{Path(args.input).name}") if args.region else None
    factor = getattr(op, "factor", 1) if task == "superres" else 1
    channels = 3 if task == "colorize" else G.channels
    truth = _truth(args, (y.shape[-2] * factor, y.shape[-1] * factor), channels, console)
    console.flush()  # inputs read and checked: show the warnings before the long solve
    t0 = time.perf_counter()
    res = restore_photo(y, op, G, region=region, keep_observed=args.keep_observed, warn=console.warn,
                        device=device, **solve_kwargs(args, console))
    seconds = time.perf_counter() - t0
    image = res.image.detach().cpu()
    save_image(image, out)
    metrics = _metrics(image, truth)
    summary = (f"wrote {out} ({args.method}, {image.shape[-1]}x{image.shape[-2]}, {seconds:.1f} s"
               + (f", PSNR {metrics['psnr']:.2f} dB vs truth" if metrics else "") + ")")
    geo = res.geometry
    report = {"command": task, "output": str(out), "metrics": metrics, "seconds": round(seconds, 3),
              "resolution": {"output": list(image.shape[-2:]), "prior": G.resolution, "fit": "full",
                             "upscale": round(geo.upscale, 3),
                             "region": [geo.region.x, geo.region.y, geo.region.w, geo.region.h]},
              "options": dict(prior=args.prior, method=args.method, preset=args.preset, seed=args.seed,
                              keep_observed=args.keep_observed, device=str(device),
                              solver=getattr(res.result, "options", {}))}
    if args.compare:
        report["compare"] = str(_compare_figure(args.compare, task, op, y, image, truth))
        summary += f"\nwrote {args.compare}"
    console.info(summary)
    console.report(report)
    return 0


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
    return save_comparison([panels], path, title=f"{task} at {w}x{h}: observation, classical, restored")


def parse_region(text: str) -> Region:
    """argparse type for ``--region X,Y,W,H``."""
    import argparse
    try:
        return Region.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))
