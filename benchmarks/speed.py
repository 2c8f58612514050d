"""Speed benchmark of restore.solve on dcgan-digiface64, every figure also as a ratio to the bare
generator step (one forward + backward of the generator, measured in the same run).

1. The bare step: ``G(z)`` forward + backward at batch 1 and 16 (median over steps).
2. Framework overhead per step: ``restore.solve`` (latent, one start, no polish) against a bare
   hand-written loop (``torch.optim.Adam`` on ``z``, MSE of ``A(G(z))`` to ``y``), same batch.
3. Batching: per-image step throughput at batch 16 against batch 1.
4. In-range targets ``G(z*)``: ``latent`` default on CS m=1000 and SR x4 (exactness: PSNR >= 40 dB
   on every target; seconds per image; in bare batch-1 steps per image).
5. Real photos (out of range, SR x4): every method at ``fast`` and ``default``; ``steps=20``
   against the default; restarts and LM starts per sample.

Usage: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/speed.py [--targets 8] [--batch 8] [--threads 2]``
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent  # not on the path: benchmarks/operators.py would shadow the package
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import priors  # noqa: E402
import restore  # noqa: E402
from operators import CompressedSensing, Downsample  # noqa: E402

RESULTS = _HERE / "results"


def _median_step(stamps):
    d = torch.tensor(stamps).diff()[2:]  # skip warm-up steps
    return float(d.median())


def bare_step(G, batch, steps=20):
    """Median seconds of one generator forward + backward at ``batch``."""
    z = G.sample_latents(batch, seed=0).requires_grad_(True)
    stamps = [time.perf_counter()]
    for _ in range(steps):
        z.grad = None
        G(z).square().mean().backward()
        stamps.append(time.perf_counter())
    return _median_step(stamps)


def bare_loop(G, A, y, z0, steps):
    """Per-step seconds of a hand-written Adam loop (the reference)."""
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.1)
    stamps = [time.perf_counter()]
    for _ in range(steps):
        loss = (A(G(z)) - y).square().flatten(1).mean(1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stamps.append(time.perf_counter())
    return _median_step(stamps)


def framework_loop(G, A, y, steps):
    stamps = []
    restore.solve(y, A, G, method="latent", steps=steps, attempt_steps=steps, seed=0, progress=False, n_init=1,
                  n_starts=1, restarts=0, refine_steps=0, stall_window=10 * steps,
                  callbacks=[lambda s: stamps.append(time.perf_counter())])
    return _median_step(stamps)


def real_photos(n: int) -> torch.Tensor:
    """``n`` real 64x64 photos (out of the prior's range): the built-in face, then
    scikit-image's astronaut, chelsea, coffee, rocket (centre crops), cycling."""
    from skimage import data

    from restore.data import face

    imgs = [face()]
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        a = getattr(data, name)()
        h, w = a.shape[:2]
        s = min(h, w)
        a = a[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]
        t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255
        imgs.append(F.interpolate(t, size=(64, 64), mode="area"))
    return torch.cat([imgs[i % len(imgs)] for i in range(n)]).clamp(0, 1)


def timed_solve(y, A, G, **kw):
    t = time.perf_counter()
    res = restore.solve(y, A, G, seed=0, progress=False, **kw)
    return res, time.perf_counter() - t


def in_range_rows(G, n, batch, unit):
    rows = []
    x = G(G.sample_latents(n, seed=1234)).detach()
    for task, A in (("CS m=1000", CompressedSensing(1000, (3, 64, 64), seed=0)), ("SR x4", Downsample(4))):
        psnrs, seconds = [], 0.0
        for part in x.split(batch):
            res, dt = timed_solve(A(part), A, G, method="latent")
            psnrs += restore.metrics.psnr(res.image, part).tolist()
            seconds += dt
        per = seconds / n
        rows.append(f"| {task} | latent default | {sum(p >= 40 for p in psnrs)}/{n} | {min(psnrs):.1f} | "
                    f"{float(np.mean(psnrs)):.1f} | {per:.2f} | {per / unit:.0f} |")
    return rows


def _attempts(res) -> int:
    """History rows beyond the first attempt are restarts / LM starts: counted from the NaNs of
    samples that sat out a sub-batch phase (rows where some but not all samples ran)."""
    h = res.history
    return int((torch.isnan(h).any(1) & ~torch.isnan(h).all(1)).sum())


def real_rows(G, n, unit, methods=("latent", "mgan", "dgp"), presets=("default", "fast")):
    x = real_photos(n)
    A = Downsample(4)
    y = A(x)
    rows, default_time = [], {}
    for method in methods:
        for preset in presets:
            res, dt = timed_solve(y, A, G, method=method, preset=preset)
            psnr = float(restore.metrics.psnr(res.image, x).mean())
            if preset == "default":
                default_time[method] = dt
            ratio = f"{dt / default_time[method]:.2f}" if method in default_time and preset != "default" else ""
            rows.append(f"| {method} | {preset} | {dt / n:.2f} | {dt / n / unit:.0f} | {ratio} | {psnr:.2f} | "
                        f"{_attempts(res)} |")
        res, dt = timed_solve(y, A, G, method=method, steps=20)
        ratio = f"{dt / default_time[method]:.2f}" if method in default_time else ""
        rows.append(f"| {method} | steps=20 | {dt / n:.2f} | {dt / n / unit:.0f} | {ratio} | "
                    f"{float(restore.metrics.psnr(res.image, x).mean()):.2f} | {_attempts(res)} |")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="steps of the overhead loops")
    ap.add_argument("--targets", type=int, default=8, help="in-range targets per task")
    ap.add_argument("--real", type=int, default=4, help="real photos")
    ap.add_argument("--batch", type=int, default=8, help="batch of the in-range solves")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list of sections to skip: inrange,real")
    ap.add_argument("--real-methods", default="latent,mgan,dgp", help="methods of the real-photo rows")
    ap.add_argument("--real-presets", default="default,fast", help="presets of the real-photo rows")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    G = priors.load("dcgan-digiface64", progress=False)
    load0 = os.getloadavg()
    unit1, unit16 = bare_step(G, 1), bare_step(G, 16)
    lines = ["# Speed benchmark (dcgan-digiface64)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
             f"{args.threads} threads; load average at the start {load0[0]:.1f} (other jobs share these cores).", "",
             f"Bare generator step (forward + backward): batch 1 {unit1 * 1e3:.1f} ms, batch 16 {unit16 * 1e3:.1f} ms "
             f"({unit16 / 16 * 1e3:.2f} ms per image). 'bare steps' below are batch-1 bare steps.", "",
             "## Framework overhead per step (median over steps, best of 2 runs)", "",
             "| batch | bare Adam loop s/step | restore.solve s/step | overhead | restore.solve in bare steps |",
             "|---|---|---|---|---|"]
    ov = []
    for batch in (1, 16):
        x = G(G.sample_latents(batch, seed=1)).detach()
        A = Downsample(4)
        bare = min(bare_loop(G, A, A(x), G.sample_latents(batch, seed=0), args.steps) for _ in range(2))
        ours = min(framework_loop(G, A, A(x), args.steps) for _ in range(2))
        ov.append((batch, bare, ours))
        lines.append(f"| {batch} | {bare:.4f} | {ours:.4f} | {100 * (ours / bare - 1):+.1f}% | "
                     f"{ours / (unit1 if batch == 1 else unit16):.2f} |")
    (b1, _, o1), (b16, _, o16) = ov
    lines += ["", f"Per-image throughput, batch 16 vs batch 1 (restore.solve): {(b16 / o16) / (b1 / o1):.2f}x", ""]
    if "inrange" not in args.skip:
        lines += [f"## In-range targets, latent default (batch {args.batch})", "",
                  "| task | method | >= 40 dB | min PSNR | mean PSNR | s/image | bare steps/image |",
                  "|---|---|---|---|---|---|---|", *in_range_rows(G, args.targets, args.batch, unit1), ""]
    if "real" not in args.skip:
        lines += [f"## Real photos, SR x4 (batch {args.real}, out of the prior's range)", "",
                  "| method | preset | s/image | bare steps/image | time vs default | mean PSNR | sub-batch steps |",
                  "|---|---|---|---|---|---|---|", *real_rows(G, args.real, unit1, args.real_methods.split(","), args.real_presets.split(",")), "",
                  "'sub-batch steps': steps that ran for only some of the samples (restarts, LM starts).", ""]
    if not torch.cuda.is_available():
        lines += ["GPU: not measured (no GPU on this machine).", ""]
    load = os.getloadavg()
    lines += [f"Load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on {os.cpu_count()} cores."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
