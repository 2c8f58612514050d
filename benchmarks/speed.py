"""Speed benchmark of restore.solve on dcgan-digiface64 (SR x4 observations of in-range targets).

1. Framework overhead per step: ``restore.solve`` (latent, one start, no polish) against a bare
   hand-written loop (``torch.optim.Adam`` on ``z``, MSE of ``A(G(z))`` to ``y``), same generator
   and batch; per-step times come from timestamps at every step (initialisation excluded).
2. Batching: per-image step throughput at batch 16 against batch 1.
3. Seconds per image per method at the default preset (CPU; GPU when CUDA is available).

Usage: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/speed.py [--steps 60] [--batch 4]``
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

import torch  # noqa: E402

import priors  # noqa: E402
import restore  # noqa: E402
from operators import Downsample  # noqa: E402

RESULTS = _HERE / "results"


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


def _median_step(stamps):
    d = torch.tensor(stamps).diff()[2:]  # skip warm-up steps
    return float(d.median())


def framework_loop(G, A, y, steps):
    stamps = []
    restore.solve(y, A, G, method="latent", steps=steps, seed=0, progress=False, n_init=1, n_starts=1,
                  restarts=0, refine_steps=0, callbacks=[lambda s: stamps.append(time.perf_counter())])
    return _median_step(stamps)


def overhead_rows(G, steps):
    rows = []
    for batch in (1, 16):
        x = G(G.sample_latents(batch, seed=1)).detach()
        A = Downsample(4)
        y = A(x)
        z0 = G.sample_latents(batch, seed=0)
        bare = min(bare_loop(G, A, y, z0, steps) for _ in range(2))
        ours = min(framework_loop(G, A, y, steps) for _ in range(2))
        rows.append((batch, bare, ours))
    return rows


def method_rows(G, batch, device):
    x = G(G.sample_latents(batch, seed=1)).detach().to(device)
    A = Downsample(4).to(device)
    out = []
    for method in ("latent", "mgan", "dgp"):
        t = time.perf_counter()
        res = restore.solve(A(x), A, G, method=method, seed=0, progress=False, device=device)
        dt = (time.perf_counter() - t) / batch
        out.append((method, dt, float(restore.metrics.psnr(res.image.cpu(), x.cpu()).mean())))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=4, help="batch for the per-method timing")
    args = ap.parse_args(argv)
    G = priors.load("dcgan-digiface64", progress=False)
    ov = overhead_rows(G, args.steps)
    lines = ["# Speed benchmark (dcgan-digiface64, SR x4)", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads; other jobs share these cores.", "",
             "## Framework overhead per step (median over steps, best of 2 runs)", "",
             "| batch | bare Adam loop s/step | restore.solve s/step | overhead |", "|---|---|---|---|"]
    for batch, bare, ours in ov:
        lines.append(f"| {batch} | {bare:.4f} | {ours:.4f} | {100 * (ours / bare - 1):+.1f}% |")
    (b1, _, o1), (b16, _, o16) = ov
    lines += ["", f"Per-image throughput, batch 16 vs batch 1 (restore.solve): "
                  f"{(b16 / o16) / (b1 / o1):.2f}x ({b1 / o1:.1f} vs {b16 / o16:.1f} image-steps/s)", ""]
    lines += [f"## Seconds per image per method, default preset (batch {args.batch}, SR x4 targets)", "",
              "| device | method | s/image | PSNR |", "|---|---|---|---|"]
    load0 = os.getloadavg()[0]
    for method, dt, p in method_rows(G, args.batch, "cpu"):
        lines.append(f"| CPU | {method} | {dt:.1f} | {p:.1f} |")
    if torch.cuda.is_available():
        for method, dt, p in method_rows(G.to("cuda"), args.batch, "cuda"):
            lines.append(f"| GPU fp32 | {method} | {dt:.2f} | {p:.1f} |")
    else:
        lines += ["| GPU fp32 | all | not measured (no GPU) | |", "| GPU bf16 | all | not measured (no GPU) | |"]
    load = os.getloadavg()
    lines += ["", f"Load average at start of the method runs {load0:.1f}, at the end {load[0]:.1f}/{load[1]:.1f}/"
                  f"{load[2]:.1f} on {os.cpu_count()} cores."]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
