"""Quality benchmark: restore.solve methods against classical baselines on dcgan-digiface64.

In-range targets ``G(z)`` (latents from a fixed seed, so exact recovery is possible) under seven
noise-free degradations; PSNR / SSIM / LPIPS and seconds per image per method, beside the
classical baseline of each task. Then real photos (scikit-image face crops, out of range) restored
by each method, saved as a picture grid. Results are appended as they come to a JSON file and the
markdown table is rewritten after every row, so a long run can be read while it goes.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/quality.py [--n 16] [--methods latent,mgan,dgp]
        [--tasks inpaint80,hole32,sr4,sr8,color,cs1000,cs200] [--preset default] [--photos]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent  # not on the path: benchmarks/operators.py would shadow the package
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np
import torch
import torch.nn.functional as F

import priors  # noqa: E402
import restore  # noqa: E402
from operators import CompressedSensing, Downsample, Grayscale, Mask, masks

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SEED, SOLVE_SEED = 1234, 0


def _biharmonic(y, A):
    from skimage.restoration import inpaint_biharmonic

    missing = (A.mask[0, 0] == 0).numpy()
    out = [inpaint_biharmonic(img.permute(1, 2, 0).numpy(), missing, channel_axis=-1) for img in y]
    return torch.tensor(np.stack(out)).permute(0, 3, 1, 2).float()


def _bicubic(y, A):
    return F.interpolate(y, scale_factor=A.factor if hasattr(A, "factor") else 64 // y.shape[-1], mode="bicubic",
                         align_corners=False)


TASKS = {  # name: (operator factory, baseline name, baseline)
    "inpaint80": (lambda: Mask(masks.random_pixels((64, 64), keep=0.2, seed=0)), "biharmonic", _biharmonic),
    "hole32": (lambda: Mask(masks.box((64, 64), 32)), "biharmonic", _biharmonic),
    "sr4": (lambda: Downsample(4), "bicubic", _bicubic),
    "sr8": (lambda: Downsample(8), "bicubic", _bicubic),
    "color": (lambda: Grayscale(), "gray copy", lambda y, A: y.expand(-1, 3, -1, -1)),
    "cs1000": (lambda: CompressedSensing(1000, (3, 64, 64), seed=0), "pseudo-inverse", lambda y, A: A.pinv(y)),
    "cs200": (lambda: CompressedSensing(200, (3, 64, 64), seed=0), "pseudo-inverse", lambda y, A: A.pinv(y)),
}


def scores(x_hat, x):
    x_hat = x_hat.clamp(0, 1)
    p, s, l = restore.metrics.psnr(x_hat, x), restore.metrics.ssim(x_hat, x), restore.metrics.lpips(x_hat, x)
    return {"psnr": float(p.mean()), "psnr_min": float(p.min()), "ssim": float(s.mean()), "lpips": float(l.mean()),
            "psnr_each": [round(float(v), 2) for v in p]}


def machine_state(rows=()) -> str:
    load = os.getloadavg()
    threads = sorted({r["threads"] for r in rows if "threads" in r}) or [torch.get_num_threads()]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
            f"{torch.__version__}, {'/'.join(map(str, threads))} torch thread(s) per run; load average at writing "
            f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (other jobs share the cores, so seconds are inflated)")


def write_markdown(rows, args, path):
    counts = sorted({len(r["psnr_each"]) for r in rows})
    lines = [f"# Quality benchmark (dcgan-digiface64, in-range targets G(z) from seed {TARGET_SEED}; "
             f"preset `{args.preset}`)", "",
             f"Targets per row: {counts} (the first targets of the same fixed set; see the per-target list).", "",
             "Noise-free observations; solve seed 0. PSNR mean (min over targets) in dB, SSIM, LPIPS "
             "(SqueezeNet), seconds per image (wall clock, batch of all targets).", "",
             f"Machine: {machine_state(rows)}.", "",
             "| task | method | targets | PSNR mean | PSNR min | SSIM | LPIPS | s/image |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['method']} | {len(r['psnr_each'])} | {r['psnr']:.2f} | {r['psnr_min']:.2f} | {r['ssim']:.3f} | "
                     f"{r['lpips']:.3f} | {r['seconds'] if r['seconds'] is None else round(r['seconds'], 2)} |")
    lines += ["", "Targets from the issue:", ""] + target_checks(rows)
    lines += ["", "Per-target PSNR (dB):", ""]
    lines += [f"- {r['task']} / {r['method']} ({len(r['psnr_each'])}): {' '.join(f'{v:.1f}' for v in r['psnr_each'])}"
              for r in rows]
    path.write_text("\n".join(lines) + "\n")


BASELINE = {task: name for task, (_, name, _) in TASKS.items()}


def target_checks(rows) -> list:
    """The issue's targets, each with the figure measured (or 'not run')."""
    get = {(r["task"], r["method"]): r for r in rows if r["method"] in ("latent", "mgan", "dgp")}
    out = []
    for task in ("cs1000", "sr4"):
        r = get.get((task, "latent"))
        out.append(f"- latent >= 40 dB on every target, {task}: " + (
            "not run" if r is None else f"{'MET' if r['psnr_min'] >= 40 else 'MISSED'} (min {r['psnr_min']:.2f} dB, "
            f"{sum(v >= 40 for v in r['psnr_each'])}/{len(r['psnr_each'])} targets >= 40 dB)"))
    for method in ("mgan", "dgp"):
        for task in ("inpaint80", "sr4", "color", "cs1000"):
            r = get.get((task, method))
            out.append(f"- {method} mean >= 30 dB, {task}: " + (
                "not run" if r is None else f"{'MET' if r['psnr'] >= 30 else 'MISSED'} ({r['psnr']:.2f} dB)"))
    for method in ("latent", "mgan", "dgp"):
        for task in ("sr8", "hole32", "cs200"):
            r = get.get((task, method))
            bases = [b for b in rows if b["task"] == task and b["method"] == BASELINE[task]]
            if r is None or not bases:
                out.append(f"- {method} beats {BASELINE[task]} on {task}: not run")
                continue
            n = len(r["psnr_each"])  # the baseline on the same first n targets
            b = max(bases, key=lambda b: len(b["psnr_each"]))
            b_psnr = float(np.mean(b["psnr_each"][:n]))
            out.append(f"- {method} beats {BASELINE[task]} on {task}: {'MET' if r['psnr'] > b_psnr else 'MISSED'} "
                       f"({r['psnr']:.2f} vs {b_psnr:.2f} dB PSNR on the same {n} targets)")
    return out


def run_tasks(G, args, rows, save):
    x = G(G.sample_latents(args.n, seed=TARGET_SEED)).detach()
    for task in args.tasks:
        make, base_name, base = TASKS[task]
        A = make()
        y = A(x)
        if not any(r["task"] == task and r["method"] == base_name for r in rows):
            t = time.time()
            est = base(y, A)
            rows.append({"task": task, "method": base_name, "seconds": (time.time() - t) / args.n, **scores(est, x)})
            save()
        for method in args.methods:
            if any(r["task"] == task and r["method"] == method for r in rows):
                continue
            t = time.time()
            res = restore.solve(y, A, G, method=method, seed=SOLVE_SEED, preset=args.preset, progress=False)
            rows.append({"task": task, "method": method, "seconds": (time.time() - t) / args.n,
                         "threads": torch.get_num_threads(), **scores(res.image, x)})
            print(f"{task:9s} {method:7s} {rows[-1]['psnr']:.2f} dB (min {rows[-1]['psnr_min']:.2f}) "
                  f"{rows[-1]['seconds']:.1f} s/img", flush=True)
            save()


def face_photos() -> torch.Tensor:
    """Real faces from scikit-image, 64x64 RGB in [0, 1]: the astronaut's face and LFW faces."""
    from skimage import data
    from skimage.transform import resize

    crops = [data.astronaut()[30:190, 160:320] / 255.0]
    lfw = data.lfw_subset()
    crops += [np.repeat(lfw[i][..., None], 3, -1) for i in (0, 3, 7)]
    out = [resize(c, (64, 64, 3), anti_aliasing=True) for c in crops]
    return torch.tensor(np.stack(out)).permute(0, 3, 1, 2).float().clamp(0, 1)


def run_photos(G, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = face_photos()
    A = Mask(masks.random_pixels((64, 64), keep=0.2, seed=0))
    y = A(x)
    cols = {"target": x, "observed (80% missing)": y, "biharmonic": _biharmonic(y, A).clamp(0, 1)}
    table = []
    for method in args.methods:
        res = restore.solve(y, A, G, method=method, seed=SOLVE_SEED, preset=args.preset, progress=False)
        cols[method] = res.image
        sc = scores(res.image, x)
        table.append(f"| {method} | {sc['psnr']:.2f} | {sc['ssim']:.3f} | {sc['lpips']:.3f} |")
    table.insert(0, f"| biharmonic | {scores(cols['biharmonic'], x)['psnr']:.2f} | "
                    f"{scores(cols['biharmonic'], x)['ssim']:.3f} | {scores(cols['biharmonic'], x)['lpips']:.3f} |")
    fig, axes = plt.subplots(len(x), len(cols), figsize=(1.6 * len(cols), 1.6 * len(x)))
    for j, (name, imgs) in enumerate(cols.items()):
        for i in range(len(x)):
            axes[i, j].imshow(imgs[i].permute(1, 2, 0).numpy().clip(0, 1))
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
        axes[0, j].set_title(name, fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "photos_inpaint80.png", dpi=100)
    return ["", "# Real photos (out of range): 80% missing pixels", "",
            "scikit-image faces (astronaut crop, three LFW faces), 64x64; grid: `photos_inpaint80.png`.", "",
            "| method | PSNR | SSIM | LPIPS |", "|---|---|---|---|"] + table


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--methods", default="latent,mgan,dgp")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--preset", default="default")
    ap.add_argument("--photos", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "quality.md"))
    ap.add_argument("--merge", nargs="*", help="only merge these JSON result files into --out")
    args = ap.parse_args(argv)
    if args.merge:
        rows = [r for f in args.merge for r in json.loads(Path(f).read_text())]
        seen, merged = set(), []
        for r in rows:
            key = (r["task"], r["method"], len(r["psnr_each"]))
            if key not in seen:
                seen.add(key)
                merged.append(r)
        order = list(TASKS)
        merged.sort(key=lambda r: (order.index(r["task"]), r["method"] in ("latent", "mgan", "dgp")))
        write_markdown(merged, args, Path(args.out))
        return
    args.methods, args.tasks = args.methods.split(","), [t for t in args.tasks.split(",") if t]
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    store = out.with_suffix(".json")
    rows = json.loads(store.read_text()) if store.exists() else []
    G = priors.load("dcgan-digiface64", progress=False)

    def save():
        store.write_text(json.dumps(rows, indent=1))
        write_markdown(rows, args, out)

    if args.tasks:
        run_tasks(G, args, rows, save)
    if args.photos:
        extra = run_photos(G, args)
        (RESULTS / "photos.md").write_text("\n".join(extra[1:] + ["", f"Preset `{args.preset}`, solve seed {SOLVE_SEED}; "
                                                                      f"machine: {machine_state()}."]) + "\n")


if __name__ == "__main__":
    main()
