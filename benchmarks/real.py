"""Real-image benchmark: restore.solve methods beside classical baselines on real photos.

Two fixture domains (``benchmarks/data/real``): rendered DigiFace-1M faces (the prior's own
domain, never outputs of G) and out-of-domain photos shipped with scikit-image / matplotlib.
Tasks (see ``real_data.py``): SR x4, SR x8, a 32x32 hole, 80% missing pixels, colorization and
Gaussian CS m=2000, each noise-free and/or with Gaussian noise of std ``--noise`` (seeded per
image and task). Every method is run beside the classical baselines of its task. Reports PSNR,
SSIM, LPIPS (SqueezeNet) and seconds per image: per-image rows and means per (domain, task,
noise, method) in JSON, a markdown table, and one picture grid per noise level.

Usage::

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/real.py [--n 4] [--split dev]
        [--tasks sr4,sr8,hole32,inpaint80,color,cs2000] [--noise 0,0.02] [--methods mgan]
        [--preset fast] [--steps N] [--solve-opt consistency=project --solve-opt dgp:steps=200]
        [--size 64] [--out benchmarks/results/real.md] [--threads 1] [--resume]

``--solve-opt KEY=VALUE`` passes ``KEY=VALUE`` (a Python literal, else a string) to every
``restore.solve`` call; ``METHOD:KEY=VALUE`` only to that method's.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time
import zlib
from pathlib import Path

_HERE = Path(__file__).resolve().parent  # after the repo root: benchmarks/operators.py must not shadow the package
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

import priors  # noqa: E402
import restore  # noqa: E402
from operators import GaussianNoise  # noqa: E402
from restore.losses import lpips_network  # noqa: E402
from restore.options import DEFAULT_METHOD, METHODS  # noqa: E402
from restore.tasks import observation_view  # noqa: E402

import real_data  # noqa: E402
import real_report  # noqa: E402

RESULTS = _HERE / "results"
SOLVE_SEED = 0


def parse_solve_opts(items, methods):
    """``{method: {key: value}}`` from ``KEY=VALUE`` / ``METHOD:KEY=VALUE`` strings."""
    out = {m: {} for m in methods}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--solve-opt wants KEY=VALUE or METHOD:KEY=VALUE, got {item!r}")
        scope, _, name = key.rpartition(":")
        if scope and scope not in METHODS:
            raise SystemExit(f"--solve-opt {item!r}: unknown method {scope!r}; choose one of {', '.join(METHODS)}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        for m in ([scope] if scope else methods):
            if m in out:
                out[m][name] = value
    return out


def observe(op, x, names, task, sigma):
    """``A(x)`` plus, for ``sigma`` > 0, Gaussian noise seeded per (image name, task)."""
    if sigma == 0:
        return op(x)
    ys = [op.degrade(x[i:i + 1], GaussianNoise(sigma, seed=zlib.crc32(f"{n}/{task}".encode())))
          for i, n in enumerate(names)]
    return torch.cat(ys)


def score(est, x, net):
    est = est.detach().float().clamp(0, 1)
    m = restore.metrics
    return [{"psnr": float(p), "ssim": float(s), "lpips": float(q)}
            for p, s, q in zip(m.psnr(est, x), m.ssim(est, x), m.lpips(est, x, net=net))]


def run_group(kind, name, fn, x, names, key, rows, grid, args):
    """Run one reconstruction ``fn() -> (B, C, H, W)`` for a group, record per-image rows."""
    t = time.perf_counter()
    est = fn()
    secs = (time.perf_counter() - t) / len(x)
    domain, task, sigma = key
    for n, sc in zip(names, score(est, x, args.lpips_net)):
        rows.append({"domain": domain, "task": task, "noise": sigma, "method": name, "kind": kind, "image": n,
                     "seconds": secs, **sc})
    grid[f"{domain}|{task}|{sigma}|{name}"] = est[:args.grid].detach().clamp(0, 1)
    mean = np.mean([r["psnr"] for r in rows[-len(x):]])
    print(f"{domain:13s} {task:9s} noise {sigma:<5g} {name:15s} {mean:6.2f} dB  {secs:6.2f} s/img", flush=True)


def run(args, G, rows, grid, save):
    done = {(r["domain"], r["task"], r["noise"], r["method"]) for r in rows}
    for domain in args.domains:
        x_all, names_all = real_data.load_real(domain, split=args.split, n=args.n, size=args.size)
        for task in args.tasks:
            op = real_data.build_task(task, args.size)
            keep = ~real_data.is_gray(x_all) if task == "color" else torch.ones(len(x_all), dtype=torch.bool)
            x, names = x_all[keep], [n for n, k in zip(names_all, keep) if k]
            if len(x) == 0:
                print(f"{domain} {task}: no image to run (all gray)", flush=True)
                continue
            shape = tuple(x.shape[1:])
            for sigma in args.noise:
                y = observe(op, x, names, task, sigma)
                view = observation_view(op, y)
                grid[f"{domain}|{task}|{sigma}|observation"] = None if view is None else view[:args.grid]
                grid[f"{domain}|{task}|{sigma}|truth"] = x[:args.grid]
                for bname, fn in real_data.BASELINES[task].items():
                    if (domain, task, sigma, bname) not in done:
                        run_group("baseline", bname, lambda: fn(y, op, shape), x, names, (domain, task, sigma),
                                  rows, grid, args)
                        save()
                for method in args.methods:
                    if (domain, task, sigma, method) in done:
                        continue
                    opts = dict(args.solve_opts[method])
                    run_group("gan", method, lambda: restore.solve(
                        y, op, G, method=method, preset=args.preset, steps=args.steps, seed=SOLVE_SEED,
                        progress=False, **opts).image, x, names, (domain, task, sigma), rows, grid, args)
                    save()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=0, help="images per domain (first N of the split; 0 = all)")
    ap.add_argument("--split", default="dev", choices=real_data.SPLITS, help="fixture split (default dev)")
    ap.add_argument("--domains", default=",".join(real_data.DOMAINS))
    ap.add_argument("--tasks", default=",".join(real_data.TASKS))
    ap.add_argument("--noise", default="0,0.02", help="comma-separated noise stds (0 = noise-free)")
    ap.add_argument("--methods", default=DEFAULT_METHOD, help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--solve-opt", action="append", default=[], metavar="[METHOD:]KEY=VALUE")
    ap.add_argument("--size", type=int, default=64, help="image side (64 = the prior's resolution)")
    ap.add_argument("--prior", default="dcgan-digiface64")
    ap.add_argument("--grid", type=int, default=2, help="images per domain and task in the picture grid")
    ap.add_argument("--out", default=str(RESULTS / "real.md"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    ap.add_argument("--resume", action="store_true", help="keep the (domain, task, noise, method) groups already in OUT.json "
                    "(whatever their --n) and run only the missing ones")
    args = ap.parse_args(argv)
    args.domains = _choices(args.domains, real_data.DOMAINS, "--domains")
    args.tasks = _choices(args.tasks, real_data.TASKS, "--tasks")
    args.methods = _choices(args.methods, METHODS, "--methods") if args.methods else []
    args.noise = [float(s) for s in args.noise.split(",") if s != ""]
    if any(s < 0 for s in args.noise):
        raise SystemExit(f"--noise stds must be >= 0, got {args.noise}")
    args.solve_opts = parse_solve_opts(args.solve_opt, args.methods)
    return args


def _choices(text, valid, flag):
    items = [s for s in text.split(",") if s]
    bad = [s for s in items if s not in valid]
    if bad or not items:
        raise SystemExit(f"{flag}: unknown {bad or 'empty list'}; choose from {', '.join(valid)}")
    return items


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    store = out.with_suffix(".json")
    rows = json.loads(store.read_text())["rows"] if args.resume and store.exists() else []
    grid_store = out.with_suffix(".grid.pt")  # the grid's images, so a resumed run draws every group
    grid = torch.load(grid_store) if args.resume and grid_store.exists() else {}
    G = priors.load(args.prior, progress=False)
    args.lpips_net = lpips_network("cpu")
    t0 = time.time()

    def save():
        real_report.write_all(rows, args, out, grid, time.time() - t0)
        torch.save(grid, grid_store)

    run(args, G, rows, grid, save)
    save()
    print(f"wrote {out}, {store}, {grid_store.name} and the grids in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
