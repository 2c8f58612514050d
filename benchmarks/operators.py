"""Benchmark the degradation operators: build time, forward+adjoint time, pinv time, peak extra memory.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/operators.py [--threads 2] [--repeat 20] \
        [--markdown benchmarks/results/operators.md]

Every (operator, size) case runs in a fresh Python process so that memory figures do not
inherit another case's allocator state. Inside it: one float32 image ``(1, C, H, W)`` is made,
the resident-set peak is reset (Linux ``/proc/self/clear_refs``), the operator is built and
``A`` + ``A_adjoint`` run three times; "peak extra MB" is the peak resident memory above the
level before the build (operator buffers plus temporaries). The time is the median of
``--repeat`` forward+adjoint pairs after that warm-up. Targets from the project's contract:
SRHT at 3x256x256 with m = 10% of n under 50 ms forward+adjoint on 2 threads and under 50 MB
extra memory; a dense Gaussian 3x64x64 with m = 1000 built in under 2 s.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# This file is named like the package it measures: make ``import operators`` find the package.
_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path[0] = str(_HERE.parent)

SIZES = [(3, 64, 64), (3, 256, 256)]
CASES = [
    "Mask (random pixels, keep 10%)", "Downsample x4 bicubic", "Downsample x4 box",
    "Downsample x4 gaussian", "Grayscale", "CompressedSensing srht m=10%",
    "CompressedSensing gaussian m=1000", "Grayscale @ Downsample x4 bicubic",
]
TARGETS = {  # (case, size) -> (max fwd+adj ms, max extra MB, max build s)
    ("CompressedSensing srht m=10%", (3, 256, 256)): (50.0, 50.0, None),
    ("CompressedSensing gaussian m=1000", (3, 64, 64)): (None, None, 2.0),
}


def _make(case: str, shape):
    from operators import CompressedSensing, Downsample, Grayscale, Mask, masks
    n = shape[0] * shape[1] * shape[2]
    return {
        "Mask (random pixels, keep 10%)": lambda: Mask(masks.random_pixels(shape[1:], keep=0.1, seed=0)),
        "Downsample x4 bicubic": lambda: Downsample(4),
        "Downsample x4 box": lambda: Downsample(4, "box"),
        "Downsample x4 gaussian": lambda: Downsample(4, "gaussian"),
        "Grayscale": lambda: Grayscale(),
        "CompressedSensing srht m=10%": lambda: CompressedSensing(n // 10, shape, "srht", seed=0),
        "CompressedSensing gaussian m=1000": lambda: CompressedSensing(1000, shape, "gaussian", seed=0),
        "Grayscale @ Downsample x4 bicubic": lambda: Grayscale() @ Downsample(4),
    }[case]()


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _warm_up_runtime(torch) -> None:
    """Run small unrelated convolutions / matmuls / FFT first so that one-time runtime set-up
    (thread pool, kernel dispatch tables) is not counted as an operator's memory."""
    import torch.nn.functional as F
    a = torch.rand(4, 1, 96, 96)
    F.conv_transpose2d(F.conv2d(a, torch.rand(1, 1, 5, 1), stride=(2, 1)), torch.rand(1, 1, 5, 1), stride=(2, 1))
    (torch.rand(512, 512) @ torch.rand(512, 512)).sum()
    torch.randn(1000, 1000, generator=torch.Generator().manual_seed(0)).sort()


def run_case(case: str, shape, repeat: int) -> dict:
    """Measure one case in this process (called in a child process by :func:`main`)."""
    import torch
    _warm_up_runtime(torch)
    x = torch.rand((1,) + tuple(shape), generator=torch.Generator().manual_seed(0))
    before = _status_kb("VmRSS")
    exact_peak = _reset_peak()
    start = time.perf_counter()
    op = _make(case, shape)
    build_s = time.perf_counter() - start
    with torch.no_grad():
        for _ in range(3):
            y = op.A(x)
            op.A_adjoint(y)
        extra_mb = (_status_kb("VmHWM") - before) / 1024
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            op.A_adjoint(op.A(x))
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        op.pinv(y)
        pinv_s = time.perf_counter() - start
    return {"build_s": build_s, "fwd_adj_ms": 1e3 * statistics.median(times), "fwd_adj_min_ms": 1e3 * min(times),
            "pinv_ms": 1e3 * pinv_s, "extra_mb": extra_mb, "exact_peak": exact_peak,
            "out_shape": list(y.shape[1:])}


def _child(case: str, shape, repeat: int, threads: int) -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, "--size", "x".join(map(str, shape)),
           "--repeat", str(repeat), "--threads", str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark case {case!r} {shape} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _target_note(case: str, shape, row: dict) -> str:
    target = TARGETS.get((case, tuple(shape)))
    if target is None:
        return ""
    ms, mb, build = target
    checks = []
    if ms is not None:
        checks.append(f"fwd+adj < {ms:g} ms: {'met' if row['fwd_adj_ms'] < ms else 'MISSED'}")
    if mb is not None:
        checks.append(f"memory < {mb:g} MB: {'met' if row['extra_mb'] < mb else 'MISSED'}")
    if build is not None:
        checks.append(f"build < {build:g} s: {'met' if row['build_s'] < build else 'MISSED'}")
    return "; ".join(checks)


def _table(rows) -> str:
    lines = ["| operator | input | output | build (s) | fwd+adj median (ms) | fwd+adj min (ms) | pinv (ms) | peak extra MB | target |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for case, shape, row in rows:
        size = "x".join(map(str, shape))
        out = "x".join(map(str, row["out_shape"]))
        lines.append(f"| {case} | {size} | {out} | {row['build_s']:.3f} | {row['fwd_adj_ms']:.2f} | "
                     f"{row['fwd_adj_min_ms']:.2f} | {row['pinv_ms']:.1f} | {row['extra_mb']:.1f} | "
                     f"{_target_note(case, shape, row)} |")
    return "\n".join(lines)


def _machine(threads: int) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch
    return (f"{cpu}, {os.cpu_count()} logical cores visible, torch {torch.__version__}, "
            f"torch.set_num_threads({threads}), OMP_WAIT_POLICY=PASSIVE, Python {platform.python_version()}")


def _write_markdown(args, rows, table: str, load_before, load_after) -> None:
    exact = all(r["exact_peak"] for _, _, r in rows)
    loads = "/".join(f"{v:.2f}" for v in load_before), "/".join(f"{v:.2f}" for v in load_after)
    text = [
        "# Operator benchmark", "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `python benchmarks/operators.py --threads "
        f"{args.threads} --repeat {args.repeat}` on: {_machine(args.threads)}.", "",
        f"Load average (1/5/15 min) before: {loads[0]}, after: {loads[1]}. {args.note}".rstrip(), "",
        "Batch of one float32 image. *fwd+adj*: `A` then `A_adjoint` (input checks included), median and "
        "minimum of the repeats after 3 warm-up pairs. *pinv*: one `pinv(A x)` with the default tolerance "
        "1e-6 (closed form for Mask, Grayscale and box Downsample; CGLS otherwise). *peak extra MB*: peak "
        "resident memory during build + 3 forward/adjoint pairs minus the resident memory before the build "
        + ("(peak reset through /proc/self/clear_refs)." if exact else "(peak reset unavailable: upper bound)."),
        "", table, "",
    ]
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text("\n".join(text))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table and context here")
    parser.add_argument("--note", default="", help="free text about the machine's other load, for the record")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        import torch
        torch.set_num_threads(args.threads)
        print(json.dumps(run_case(args.child, tuple(int(s) for s in args.size.split("x")), args.repeat)))
        return 0
    load_before = os.getloadavg()
    rows = []
    for shape in SIZES:
        for case in CASES:
            rows.append((case, shape, _child(case, shape, args.repeat, args.threads)))
            print(f"{case:38s} {'x'.join(map(str, shape)):10s} fwd+adj {rows[-1][2]['fwd_adj_ms']:8.2f} ms  "
                  f"extra {rows[-1][2]['extra_mb']:7.1f} MB  build {rows[-1][2]['build_s']:.3f} s", flush=True)
    load_after = os.getloadavg()
    table = _table(rows)
    print("\n" + table)
    if args.markdown:
        _write_markdown(args, rows, table, load_before, load_after)
        print(f"\nwrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
