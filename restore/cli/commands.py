"""The restoring sub-commands (inpaint, superres, colorize, cs) and ``degrade``."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Tuple

import torch

from ..figures import Panel, psnr_caption, save_comparison
from ..io import fit_image, load_image, save_image, save_observation
from ..outputs import atomic_paths, check_writable
from ..tasks import (TaskOptions, build_operator, classical_baseline, clean_image, observation_view, observe_file,
                     simulate, task_of, keep_observed)
from .common import Console, UserError, load_prior, resolve_device, solve_kwargs
from .uncertainty import check_sampling, run_samples, wants_samples

__all__ = ["run_restore", "run_degrade", "task_options", "check_outputs"]


def task_options(args, task: str) -> TaskOptions:
    """:class:`TaskOptions` from parsed arguments (options a sub-command lacks keep defaults)."""
    names = ("mask", "mask_kind", "keep", "size", "factor", "m", "cs_kind")
    return TaskOptions(task=task, **{n: getattr(args, n) for n in names if getattr(args, n, None) is not None})


def _observation(args, task: str, G, console: Console):
    """``(y, operator)`` from the input: an ``.npz`` observation or an image fitted to the task."""
    shape = (G.channels, G.resolution, G.resolution)
    return observe_file(args.input, task_options(args, task), shape, seed=args.seed, fit=args.fit,
                        warn=console.warn, mask_from_alpha=_mask_from_alpha(args))


def _mask_from_alpha(args) -> bool:
    if not getattr(args, "mask_from_alpha", False):
        return False
    if args.mask:
        raise UserError("--mask and --mask-from-alpha both say where the holes are; pass only one of them")
    if Path(args.input).suffix.lower() == ".npz":
        raise UserError(f"--mask-from-alpha takes an image with transparent holes, not the observation file {args.input}")
    return True


def _truth(args, G, console: Console) -> Optional[torch.Tensor]:
    if not args.truth:
        return None
    shape = (G.channels, G.resolution, G.resolution)
    return clean_image(args.truth, shape, fit=args.fit, warn=console.warn, what=f"truth {Path(args.truth).name}")


def _metrics(x: torch.Tensor, truth: Optional[torch.Tensor]) -> dict:
    if truth is None:
        return {}
    from ..metrics import psnr, ssim

    x, truth = x.cpu().float().clamp(0, 1), truth.cpu().float().clamp(0, 1)
    return {"psnr": round(float(psnr(x, truth)[0]), 3), "ssim": round(float(ssim(x, truth)[0]), 4)}


def _default_output(args, task: str) -> Path:
    return Path(args.output) if args.output else Path(f"{Path(args.input).stem}_{task}.png")


def run_restore(args, task: str) -> int:
    """Restore one observation; writes the output image (and figure), prints a summary."""
    from ..solve import solve
    from .photo import handles, run_photo

    if handles(args, task):
        return run_photo(args, task)
    if getattr(args, "region", None) is not None:
        raise UserError(f"--region needs --fit full (the default); got --fit {args.fit}")
    args.fit = "error" if args.fit == "error" else "resize"  # crop (or full on a cs / custom .npz input)
    console = Console(args.quiet, args.json, hold=True)
    device = resolve_device(args.device)
    out = _default_output(args, task)
    std_path = getattr(args, "uncertainty", None)
    targets = check_outputs(out, args.compare, std_path, inputs=(args.input, getattr(args, "mask", None), args.truth))
    kwargs = solve_kwargs(args, console)
    if wants_samples(args):
        check_sampling(args)
    G = load_prior(args.prior, args.family, device, progress=console.progress)
    y, op = _observation(args, task, G, console)
    truth = _truth(args, G, console)
    console.flush()  # inputs read and checked: show the warnings before the long solve
    t0 = time.perf_counter()
    if wants_samples(args):  # cs --samples N: the posterior mean (and a std map)
        image, extra, std_map = run_samples(args, y, op, G, device, console)
    else:
        result = solve(y.to(device), op.to(device), G, device=device, **kwargs)
        image, extra, std_map = result.image.detach().cpu(), {"solver": getattr(result, "options", {})}, None
    seconds = time.perf_counter() - t0
    keep = getattr(args, "keep_observed", True)  # only inpainting offers the option
    if keep:
        image = keep_observed(op, y, image)
    metrics = _metrics(image, truth)
    with atomic_paths(targets) as temps:  # the image, the figure and the std map: all or none
        save_image(image, temps[0], atomic=False)
        if args.compare:
            _compare_figure(temps[1], op, y, image, truth, G)
        if std_path:
            save_image(std_map, temps[-1], atomic=False)
    _summarize(args, task, console, out, seconds, metrics, extra, dict(keep_observed=keep, device=str(device)))
    return 0


def _summarize(args, task: str, console: Console, out: Path, seconds: float, metrics: dict, extra: dict,
               options: dict) -> None:
    """The one-line summary (and what else was written) on stdout, or the ``--json`` report."""
    summary = f"wrote {out} ({args.method}, {seconds:.1f} s" + (f", PSNR {metrics['psnr']:.2f} dB vs truth" if metrics else "") + ")"
    report = {"command": task, "output": str(out), "metrics": metrics, "seconds": round(seconds, 3),
              "options": dict(prior=args.prior, method=args.method, preset=args.preset, seed=args.seed,
                              **options, solver=extra["solver"])}
    if "posterior" in extra:
        report["posterior"] = extra["posterior"]
    std_path = getattr(args, "uncertainty", None)
    if std_path:
        report["uncertainty"] = str(std_path)
        summary += f"\nwrote {std_path} (posterior std / {extra['posterior']['std_max']:.4f})"
    if args.compare:
        report["compare"] = str(args.compare)
        summary += f"\nwrote {args.compare}"
    console.info(summary)
    console.report(report)


def check_outputs(*paths, npz: bool = False, inputs=()) -> list:
    """The output paths given (None skipped), refused before any work unless each has an image
    suffix (or ``.npz`` when ``npz``), can be written, and names a different file from the
    others and from the ``inputs`` (None skipped)."""
    from PIL import Image

    targets = [Path(p) for p in paths if p]
    read = {Path(p).resolve(): p for p in inputs if p}
    for p in targets:
        if p.resolve() in read:
            raise UserError(f"the output {p} is also an input ({read[p.resolve()]}): writing it would destroy "
                            "the input; choose another output path")
    for p in targets:
        if Image.registered_extensions().get(p.suffix.lower()) is None and not (npz and p.suffix.lower() == ".npz"):
            also = ", or .npz for an observation file (any task)" if npz else ""
            raise UserError(f"cannot write {p}: unknown image suffix {p.suffix!r}; use .png or .jpg{also}")
    if len({p.resolve() for p in targets}) < len(targets):
        raise UserError(f"two outputs name the same file ({', '.join(map(str, targets))}); give each its own path")
    check_writable(*targets)
    return targets


def _compare_figure(path, op, y, image, truth, G) -> Path:
    shape = (G.channels, G.resolution, G.resolution)
    name, base = classical_baseline(op, y.cpu(), shape) if task_of(op) != "custom" else ("", None)
    panels = [Panel("observation", observation_view(op, y.cpu()),
                    "" if y.dim() == 4 else f"{y[0].numel()} values")]
    if base is not None:
        panels.append(Panel(name, base, psnr_caption(base, truth)))
    panels.append(Panel("ganrestore", image, psnr_caption(image, truth)))
    if truth is not None:
        panels.append(Panel("truth", truth))
    return save_comparison([panels], path, atomic=False, title=f"{task_of(op)}: observation, classical, restored")


def _degrade_target(args, console: Console) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
    G = load_prior(args.prior, args.family, "cpu")
    shape = (G.channels, G.resolution, G.resolution)
    x = load_image(args.input, channels=3 if args.task == "colorize" else G.channels, warn=console.warn)
    return fit_image(x, G.resolution, mode=args.fit, what=Path(args.input).name, warn=console.warn), shape


def run_degrade(args) -> int:
    """Write an observation (``.npz`` with its operator, or an image) made from a clean image."""
    console = Console(args.quiet, args.json, hold=True)
    out = Path(args.output)
    image_out = out.suffix.lower() != ".npz"
    if image_out and args.task == "cs":
        raise UserError("cs observations are measurements, not images: write them with -o OUT.npz")
    mask_out = out.with_name(f"{out.stem}_mask.png") if image_out and args.task == "inpaint" else None
    targets = check_outputs(out, mask_out, npz=True, inputs=(args.input, getattr(args, "mask", None)))
    x, shape = _degrade_target(args, console)
    op = build_operator(task_options(args, args.task), shape, seed=args.seed, fit=args.fit, warn=console.warn)
    y = simulate(op, x, args.noise_sigma, args.seed)
    console.flush()
    with atomic_paths(targets) as temps:  # the observation and its mask: both or neither
        if not image_out:
            save_observation(temps[0], y, op.spec(), seed=args.seed, task=args.task, atomic=False,
                             meta={"source": str(args.input), "noise_sigma": args.noise_sigma, "prior": args.prior})
        else:
            save_image(y.clamp(0, 1), temps[0], atomic=False)
        if mask_out is not None:
            save_image(op.mask.reshape(1, -1, *op.mask.shape[-2:])[:, :1], temps[1], atomic=False)
    console.info("wrote " + ", ".join(map(str, targets)))
    console.report({"command": "degrade", "outputs": [str(p) for p in targets], "task": args.task,
                    "seed": args.seed, "observation_shape": list(y.shape)})
    return 0
