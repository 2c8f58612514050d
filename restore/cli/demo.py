"""``ganrestore demo``: the whole pipeline on a built-in face, with no arguments.

Fetches the default prior (``dcgan-digiface64``) if needed, degrades the built-in 64x64 face
(:mod:`restore.data`) four ways, restores each with the GAN prior, prints PSNR against the
classical baseline of each task and writes one comparison figure. Sized to finish in well under
3 minutes on 2 CPU cores.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import torch

from ..data import face
from ..figures import Panel, psnr_caption, save_comparison
from ..metrics import psnr
from ..options import DEFAULT_METHOD
from ..tasks import TaskOptions, build_operator, classical_baseline, keep_observed, observation_view
from .common import DEFAULT_PRIOR, Console, load_prior, resolve_device

__all__ = ["DEMO_TASKS", "run_demo", "demo_rows"]


@dataclass(frozen=True)
class DemoTask:
    label: str
    options: TaskOptions


# One operator per task, all four restored by the library's default method (``DEFAULT_METHOD``)
# at its ``fast`` preset: the result is the prior's image made consistent with the observation
# (observed pixels, luma, low frequencies and measurements come from the observation).
DEMO_TASKS = (
    DemoTask("inpaint (24x24 hole)", TaskOptions("inpaint", mask_kind="box", size=24)),
    DemoTask("super-resolution x4", TaskOptions("superres", factor=4)),
    DemoTask("colorization", TaskOptions("colorize")),
    DemoTask("compressed sensing (m = 2000)", TaskOptions("cs", m=2000, cs_kind="gaussian")),
)
DEMO_PRESET = "fast"


def _psnr(x: torch.Tensor, truth: torch.Tensor) -> float:
    return float(psnr(x.clamp(0, 1), truth)[0])


def demo_rows(G, truth: torch.Tensor, *, seed: int = 0, steps=None, device=None, progress=False,
              tasks=DEMO_TASKS) -> List[dict]:
    """Degrade ``truth`` ``(1, C, H, W)`` with each demo task, restore it, and return one dict
    per task: label, task, method, observation, baseline (name, image, psnr), result image and
    psnr, seconds."""
    from ..solve import solve

    shape = (G.channels, G.resolution, G.resolution)
    rows = []
    for t in tasks:
        op = build_operator(t.options, shape, seed=seed)
        y = op(truth)
        name, base = classical_baseline(op, y, shape)
        t0 = time.perf_counter()
        res = solve(y.to(device), op.to(device), G, method=DEFAULT_METHOD, preset=DEMO_PRESET, steps=steps,
                    seed=seed, device=device, progress=progress)
        seconds = time.perf_counter() - t0
        image = keep_observed(op, y, res.image.detach().cpu())
        rows.append(dict(label=t.label, task=t.options.task, method=DEFAULT_METHOD, observation=observation_view(op, y.cpu()),
                         y_size=int(y[0].numel()), baseline=name, baseline_image=base,
                         baseline_psnr=_psnr(base, truth), image=image, psnr=_psnr(image, truth), seconds=seconds))
    return rows


def _figure(rows: List[dict], truth: torch.Tensor, path: Path) -> Path:
    grid = []
    for r in rows:
        obs_caption = "" if r["observation"] is not None else f"{r['y_size']} measurements"
        grid.append([Panel("observation", r["observation"], obs_caption),
                     Panel(r["baseline"], r["baseline_image"], psnr_caption(r["baseline_image"], truth)),
                     Panel(f"ganrestore ({r['method']})", r["image"], psnr_caption(r["image"], truth)),
                     Panel("truth", truth)])
    return save_comparison(grid, path, title="ganrestore demo: dcgan-digiface64 prior, built-in face",
                           row_labels=[r["task"] for r in rows])


def _table(rows: List[dict]) -> str:
    head = f"{'task':<32} {'classical baseline':<26} {'ganrestore':<18} {'gain':>7} {'seconds':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        base = f"{r['baseline']} {r['baseline_psnr']:.2f} dB"
        ours = f"{r['method']} {r['psnr']:.2f} dB"
        lines.append(f"{r['label']:<32} {base:<26} {ours:<18} {r['psnr'] - r['baseline_psnr']:>+6.2f} {r['seconds']:>8.1f}")
    return "\n".join(lines)


def run_demo(args) -> int:
    from ..options import resolve
    from .commands import check_outputs

    console = Console(args.quiet, args.json)
    t0 = time.perf_counter()
    device = resolve_device(args.device)
    (figure_path,) = check_outputs(args.output)  # before the prior's download and a minute of solving
    resolve(DEFAULT_METHOD, DEMO_PRESET, args.steps)  # e.g. an absurd --steps
    console.info(f"loading the prior {DEFAULT_PRIOR} (downloaded once into the cache)...")
    G = load_prior(DEFAULT_PRIOR, None, device, progress=console.progress)
    truth = face()
    console.info("restoring the built-in face (Eileen Collins, NASA, public domain) degraded four ways...")
    rows = demo_rows(G, truth, seed=args.seed, steps=args.steps, device=device, progress=console.progress)
    fig = _figure(rows, truth, figure_path)
    total = time.perf_counter() - t0
    console.info("\nPSNR against the clean image (higher is better):\n" + _table(rows))
    console.info(f"\nwrote the comparison figure {fig} ({total:.0f} s in all)")
    console.report({"command": "demo", "figure": str(fig), "seconds": round(total, 2), "prior": DEFAULT_PRIOR,
                    "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                              if k in ("label", "task", "method", "baseline", "baseline_psnr", "psnr", "seconds")}
                             for r in rows]})
    return 0
