"""Science benchmark: noisy compressed sensing with posterior samples, against FISTA and TV.

For Gaussian (dense, ``CompressedSensing(kind="gaussian")``) and partial-Fourier (variable-density
k-space mask, ``PartialFourier``) measurements, ``m`` real measurements (a Fourier sample is two:
real and imaginary part) and noise std ``sigma``, on

* ``inrange`` targets ``G(z*)`` (latents from a fixed seed, distinct from the solver's), where the
  prior is exactly right and the ``mean +- 2 std`` band should cover about 95% of the pixels;
* ``real`` targets: for ``mlp-mnist28`` the handwritten digits that scikit-learn ships
  (``sklearn/datasets/data/digits.csv.gz``, UCI optdigits, 8x8 with 17 grey levels; upsampled to
  20x20 and centred in 28x28 as MNIST digits are; skipped when scikit-learn is absent); for
  ``dcgan-digiface64`` the real faces of ``benchmarks/data/real/in-domain`` when present;

it reports the PSNR of one ``restore.solve`` (``latent``), of the posterior mean of
``restore.sample`` (``n`` samples, Langevin; not run at ``sigma = 0``, where the posterior is a
point), of classical FISTA with DCT sparsity and of TV (``restore.classical``, lambda by held-out
residual), the coverage of the ``mean +- 2 std`` band (fraction of pixels), how many targets'
samples fit the data as the noise would (``Samples.consistent``: no wrong basin) and the coverage
on those, and seconds per image.
``m >= n`` pixels is skipped. Prints a markdown table, written to ``--out``.

Usage::

    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE python benchmarks/science.py --prior mlp-mnist28 \\
        --kinds gaussian,fourier --m 200,500 --sigma 0,0.01,0.05 --targets inrange,real --n 4
"""
from __future__ import annotations

import argparse
import importlib.util
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
from operators import CompressedSensing  # noqa: E402
from restore.classical import sparse_reconstruct  # noqa: E402
from restore.metrics import psnr  # noqa: E402

RESULTS = _HERE / "results"
TARGET_SEED, SOLVE_SEED, NOISE_SEED = 1234, 0, 99
SHARED_MNIST = Path("/work/shared/weights/mnist-mlp-G--300.ckpt")
KINDS = ("gaussian", "fourier")
TARGETS = ("inrange", "real")
COLUMNS = ["kind", "m", "sigma", "targets", "solve dB", "post. mean dB", "FISTA-DCT dB", "TV dB",
           "±2std coverage", "fit-consistent",
           "their coverage", "solve s/img", "sample s/img", "classical s/img"]


def load_prior(name: str):
    if name == "mlp-mnist28" and SHARED_MNIST.exists():  # offline copy on the build machines
        return priors.load(SHARED_MNIST, family="mlp")
    return priors.load(name)


def real_targets(G, n: int):
    """Up to ``n`` real images shaped like the prior's outputs, or None when none ship."""
    if G.resolution == 28 and G.channels == 1:
        spec = importlib.util.find_spec("sklearn")  # its digits file, read without importing sklearn
        path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
        if path is None or not path.exists():
            return None
        rows = np.loadtxt(path, delimiter=",")[:n, :64]  # 8x8 pixels (0..16) then the label
        digits = torch.from_numpy(rows.reshape(-1, 1, 8, 8)).float() / 16.0
        up = F.interpolate(digits, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
        return F.pad(up, (4, 4, 4, 4))
    folder = _HERE / "data" / "real" / "in-domain"
    if G.resolution == 64 and folder.is_dir():
        from PIL import Image

        files = sorted(folder.glob("*.png"))[:n]
        imgs = [torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255) for f in files]
        return torch.stack(imgs).permute(0, 3, 1, 2) if imgs else None  # CS cares not for dev / heldout
    return None


def make_operator(kind: str, m: int, shape):
    """The ``kind`` operator with ``m`` real measurements of images ``shape``."""
    if kind == "gaussian":
        return CompressedSensing(m, shape, kind="gaussian", seed=0)
    from operators import PartialFourier, masks

    c, h, w = shape
    fraction = m / (2 * c * h * w)  # each sampled frequency of each channel gives two reals
    return PartialFourier(shape, masks.fourier_variable_density((h, w), fraction, seed=0))


def observe(op, x, sigma: float):
    y = op(x)
    noise = torch.randn(y.shape, generator=torch.Generator().manual_seed(NOISE_SEED))
    return y + sigma * noise


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_cell(G, op, x, sigma: float, args) -> dict:
    """One table row's figures for targets ``x`` under ``op`` with noise ``sigma``."""
    y, B, shape = observe(op, x, sigma), x.shape[0], tuple(x.shape[1:])
    floor = {"sigma": sigma} if sigma > 0 else {}
    res, t_solve = timed(lambda: restore.solve(y, op, G, method="latent", preset=args.preset, seed=SOLVE_SEED,
                                               progress=False, **floor))
    row = {"solve dB": psnr(res.image, x).mean().item(), "solve s/img": t_solve / B}
    if sigma > 0 and args.samples > 0:
        steps = {"steps": args.langevin_steps} if args.strategy == "langevin" else {}
        post, t_sample = timed(lambda: restore.sample(y, op, G, n=args.samples, sigma=sigma, seed=SOLVE_SEED,
                                                      strategy=args.strategy, preset=args.preset, **steps))
        inside = ((x - post.mean).abs() <= 2 * post.std).float().mean((1, 2, 3))
        ok = post.consistent()
        row.update({"post. mean dB": psnr(post.mean, x).mean().item(), "±2std coverage": inside.mean().item(),
                    "fit-consistent": f"{int(ok.sum())}/{B}",
                    "their coverage": inside[ok].mean().item() if bool(ok.any()) else None,
                    "sample s/img": t_sample / B})
    t0 = time.perf_counter()
    for name, reg in (("FISTA-DCT dB", "dct"), ("TV dB", "tv")):
        row[name] = psnr(sparse_reconstruct(y, op, shape, regularizer=reg), x).mean().item()
    row["classical s/img"] = (time.perf_counter() - t0) / B
    return row


def fmt(key: str, v) -> str:
    if v is None:
        return "—"
    if isinstance(v, str) or key in ("kind", "targets"):
        return str(v)
    if key == "m":
        return str(int(v))
    if key == "sigma":
        return f"{v:g}"
    if key in ("±2std coverage", "their coverage"):
        return f"{100 * v:.1f}%"
    return f"{v:.2f}" if "dB" in key else f"{v:.1f}"


def table(rows) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(k, r.get(k)) for k in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", default="mlp-mnist28", help="registry name (mlp-mnist28, dcgan-digiface64)")
    ap.add_argument("--n", type=int, default=4, help="targets per cell")
    ap.add_argument("--m", default="200,500,1000,2000", help="comma-separated measurement counts")
    ap.add_argument("--sigma", default="0,0.01,0.05", help="comma-separated noise stds")
    ap.add_argument("--kinds", default="gaussian,fourier", help=f"comma-separated, of {KINDS}")
    ap.add_argument("--targets", default="inrange,real", help=f"comma-separated, of {TARGETS}")
    ap.add_argument("--samples", type=int, default=16, help="posterior samples per target (0: none)")
    ap.add_argument("--strategy", default="langevin", choices=("langevin", "ensemble"),
                    help="restore.sample strategy (ensemble: n solves of perturbed observations)")
    ap.add_argument("--langevin-steps", type=int, default=100)
    ap.add_argument("--preset", default="default", help="restore.solve preset")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--out", default=str(RESULTS / "science.md"))
    args = ap.parse_args(argv)
    args.m = [int(v) for v in args.m.split(",")]
    args.sigma = [float(v) for v in args.sigma.split(",")]
    args.kinds, args.targets = args.kinds.split(","), args.targets.split(",")
    bad = [k for k in args.kinds if k not in KINDS] + [t for t in args.targets if t not in TARGETS]
    if bad:
        ap.error(f"unknown kinds/targets {bad}; valid kinds {KINDS}, targets {TARGETS}")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    G = load_prior(args.prior)
    shape = (G.channels, G.resolution, G.resolution)
    sets = {"inrange": G(G.sample_latents(args.n, seed=TARGET_SEED)).detach(), "real": real_targets(G, args.n)}
    rows, n_pixels = [], int(np.prod(shape))
    header = (f"# Science benchmark: {args.prior}, {args.n} targets per cell, {args.samples} posterior samples "
              f"({args.strategy}" + (f", {args.langevin_steps} steps" if args.strategy == "langevin" else "")
              + f"), preset {args.preset}\n\n"
              f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}. "
              f"Command: `python benchmarks/science.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n\n")
    for kind in args.kinds:
        for m in args.m:
            if m >= n_pixels:
                print(f"skip {kind} m={m}: not fewer measurements than the {n_pixels} pixels")
                continue
            op = make_operator(kind, m, shape)
            for sigma in args.sigma:
                for name in args.targets:
                    if sets[name] is None:
                        print(f"skip {name} targets: none ship for {args.prior}")
                        continue
                    row = {"kind": kind, "m": m, "sigma": sigma, "targets": name,
                           **run_cell(G, op, sets[name], sigma, args)}
                    rows.append(row)
                    print(table([row]).splitlines()[-1], flush=True)
                    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                    Path(args.out).write_text(header + table(rows) + "\n")
    print("\n" + table(rows))


if __name__ == "__main__":
    main()
