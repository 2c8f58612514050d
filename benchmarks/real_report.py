"""Reporting for ``benchmarks/real.py``: means per group, the markdown table, target checks, grids.

Per-image rows are dicts ``{domain, task, noise, method, kind ("baseline" | "gan"), image, psnr,
ssim, lpips, seconds}``. A group is ``(domain, task, noise, method)``. The reference of a GAN
method is the *best* classical baseline of its (domain, task, noise) by mean PSNR (for CS the
better of the pseudo-inverse and TV), compared on the same images.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from restore.figures import Panel, save_comparison

__all__ = ["summarize", "write_all", "markdown", "target_lines", "save_grids"]


def summarize(rows):
    """``OrderedDict[(domain, task, noise, method)] -> {kind, n, psnr, ssim, lpips, seconds, psnr_each}``."""
    groups = OrderedDict()
    for r in rows:
        groups.setdefault((r["domain"], r["task"], r["noise"], r["method"]), []).append(r)
    out = OrderedDict()
    for key, rs in groups.items():
        out[key] = {"kind": rs[0]["kind"], "n": len(rs), "images": [r["image"] for r in rs],
                    "psnr_each": [r["psnr"] for r in rs], "lpips_each": [r["lpips"] for r in rs],
                    **{m: float(np.mean([r[m] for r in rs])) for m in ("psnr", "ssim", "lpips", "seconds")}}
    return out


def _reference(summary, domain, task, noise):
    """The best baseline group (by mean PSNR) of one (domain, task, noise), or ``None``."""
    bases = [(k[3], v) for k, v in summary.items() if k[:3] == (domain, task, noise) and v["kind"] == "baseline"]
    return max(bases, key=lambda b: b[1]["psnr"]) if bases else None


def _versus(g, ref):
    """(delta PSNR, delta LPIPS, PSNR wins) of group ``g`` against ``ref`` on their common images."""
    common = [i for i in g["images"] if i in ref["images"]]
    gp = {i: p for i, p in zip(g["images"], g["psnr_each"])}
    rp = {i: p for i, p in zip(ref["images"], ref["psnr_each"])}
    gl = {i: p for i, p in zip(g["images"], g["lpips_each"])}
    rl = {i: p for i, p in zip(ref["images"], ref["lpips_each"])}
    dp = float(np.mean([gp[i] - rp[i] for i in common]))
    dl = float(np.mean([gl[i] - rl[i] for i in common]))
    return dp, dl, sum(gp[i] > rp[i] for i in common), len(common)


def markdown(summary, args, elapsed):
    lines = [f"# Real-image benchmark (prior `{args.prior}`, preset `{args.preset}`"
             f"{'' if args.steps is None else f', {args.steps} steps'}, size {args.size})", "",
             f"Fixtures: `benchmarks/data/real` (split `{args.split}`, "
             f"{'all' if not args.n else f'first {args.n}'} images per domain; colorization leaves out gray truths). "
             f"Solve seed 0; operators seed 0; noise seeded per image and task.", "",
             f"Solve options: {json.dumps(args.solve_opts) if any(args.solve_opts.values()) else 'none'}. "
             f"Code: {_commit()}. Machine: {_machine()}; this run took {elapsed / 60:.1f} min.", "",
             "Means over images. Delta: the method minus the best classical baseline of its row group "
             "(by mean PSNR; per image, same images); wins: images where the method's PSNR is higher.", "",
             "| domain | task | noise | method | n | PSNR | SSIM | LPIPS | s/img | dPSNR vs best classical | dLPIPS | wins |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (domain, task, noise, method), g in summary.items():
        ref = _reference(summary, domain, task, noise)
        extra = "| | |"
        if g["kind"] == "gan" and ref is not None:
            dp, dl, wins, n = _versus(g, ref[1])
            extra = f"{dp:+.2f} ({ref[0]}) | {dl:+.3f} | {wins}/{n} |"
        elif g["kind"] == "baseline":
            extra = "(classical) | | |"
        lines.append(f"| {domain} | {task} | {noise:g} | {method} | {g['n']} | {g['psnr']:.2f} | {g['ssim']:.3f} | "
                     f"{g['lpips']:.3f} | {g['seconds']:.2f} | {extra}")
    return lines


def target_lines(summary):
    """The issue's targets per (domain, task, noise, GAN method), each MET/MISSED with its figures."""
    out = []
    for (domain, task, noise, method), g in summary.items():
        ref = _reference(summary, domain, task, noise)
        if g["kind"] != "gan" or ref is None:
            continue
        dp, dl, _, _ = _versus(g, ref[1])
        if domain == "in-domain":
            ok, rule = dp >= 1.0 and dl < 0, "PSNR >= best classical + 1 dB and lower LPIPS"
        else:
            ok, rule = dp >= -0.3 and dl <= 0, "PSNR >= best classical - 0.3 dB and LPIPS no worse"
        out.append(f"- {'MET' if ok else 'MISSED'}: {domain} {task} noise {noise:g} {method}: {rule} "
                   f"(dPSNR {dp:+.2f} dB, dLPIPS {dl:+.3f} vs {ref[0]})")
    return out


def save_grids(grid, args, summary, out: Path):
    """One PNG per noise level: rows = (domain, task, image), columns observation / baselines /
    methods / truth, PSNR captions."""
    paths = []
    for noise in args.noise:
        rows, labels = [], []
        for domain in args.domains:
            for task in args.tasks:
                prefix = f"{domain}|{task}|{noise}|"
                truth = grid.get(prefix + "truth")
                if truth is None:
                    continue
                names = [k[3] for k, v in summary.items() if k[:3] == (domain, task, noise)]
                obs = grid.get(prefix + "observation")
                for i in range(len(truth)):
                    row = [Panel("observation", None if obs is None else obs[i:i + 1])]
                    for name in names:
                        est = grid.get(prefix + name)
                        if est is not None and i < len(est):
                            p = float(-10 * torch.log10((est[i] - truth[i]).square().mean()))
                            row.append(Panel(name, est[i:i + 1], f"{p:.2f} dB"))
                    rows.append(row + [Panel("truth", truth[i:i + 1])])
                    labels.append(f"{'in' if domain == 'in-domain' else 'out'} {task}")
        if rows:
            path = out.with_name(f"{out.stem}_grid_noise{noise:g}.png")
            save_comparison(rows, path, row_labels=labels, cell=96,
                            title=f"real.py, noise {noise:g}, preset {args.preset}")
            paths.append(path)
    return paths


def write_all(rows, args, out: Path, grid, elapsed):
    summary = summarize(rows)
    grids = save_grids(grid, args, summary, out)
    lines = markdown(summary, args, elapsed) + ["", "Targets (issue 11):", ""] + target_lines(summary)
    lines += ["", "Picture grids: " + ", ".join(f"`{p.name}`" for p in grids)]
    out.write_text("\n".join(lines) + "\n")
    means = [{"domain": k[0], "task": k[1], "noise": k[2], "method": k[3],
              **{m: v[m] for m in ("kind", "n", "psnr", "ssim", "lpips", "seconds")}} for k, v in summary.items()]
    meta = {"prior": args.prior, "preset": args.preset, "steps": args.steps, "size": args.size, "split": args.split,
            "n": args.n, "solve_opts": args.solve_opts, "commit": _commit(), "machine": _machine()}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "means": means, "rows": rows}, indent=1))


def _commit() -> str:
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True).stdout
        return sha.strip() + (" (with uncommitted changes)" if dirty.strip() else "")
    except OSError:
        return "unknown"


def _machine() -> str:
    load = os.getloadavg()
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), load {load[0]:.1f}")
