"""Which combination of the prior's image and the classical answer is never worse than classical?

For dev fixtures of both domains (``real_data``), every task and noise level: the prior is fitted
on the fit entries of a seeded held-out split (``solve(..., validate=0.1, consistency="none")``,
its ``prior_image`` is cached), then these candidates are scored (PSNR dB / LPIPS, means):

* ``classical``: the baseline as the benchmark runs it; ``P(classical)``, ``P(prior)``: each made
  consistent with ``y`` (projection; damped with the noise level);
* ``avg``: ``P((x_c + x_G) / 2)``, rule (c);
* ``iv``: inverse-variance weights from the held-out errors, ``β = e_c / (e_c + e_G)`` (noise
  floor removed), rule (b) with the held-out residual in place of the fit residual;
* ``anchor``: :func:`restore.anchor.anchor`, ``β`` by held-out least squares less one standard
  error, rule (a); ``ls``: the same without the margin (the plain least-squares ``β``);
* ``oracle``: ``β`` by least squares against the truth (the best any ``β`` can do);
* CS also ``tv`` (FISTA/TV) and ``anchor-tv`` (the anchor with TV as the classical answer).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/anchor.py [--tasks sr4,...] [--noise 0,0.02] [--n 4]
        [--method latent] [--preset fast] [--cache /tmp/anchor] [--out benchmarks/results/anchor.md]
"""
from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

import torch  # noqa: E402

import priors  # noqa: E402
import restore  # noqa: E402
from operators import GaussianNoise  # noqa: E402
from restore.anchor import anchor, blend  # noqa: E402
from restore.consistency import damped, noise_lambda, project  # noqa: E402
from restore.holdout import Restricted, holdout  # noqa: E402
from restore.losses import lpips_network  # noqa: E402
from restore.tasks import classical_baseline, classical_from_entries  # noqa: E402

import real_data  # noqa: E402

FRACTION, SEED = 0.1, 0
OUT_OF_DOMAIN = ("astronaut-face", "chelsea", "06-dev-astronaut", "retina")


def images(n):
    x1, n1 = real_data.load_real("in-domain", split="dev", n=n)
    x2, n2 = real_data.load_real("out-of-domain", split="dev")
    pick = [i for i, name in enumerate(n2) if any(k in name for k in OUT_OF_DOMAIN)][:n]
    return torch.cat([x1, x2[pick]]), n1 + [n2[i] for i in pick], len(n1)


def observe(op, x, names, task, sigma):
    if sigma == 0:
        return op(x)
    return torch.cat([op.degrade(x[i:i + 1], GaussianNoise(sigma, seed=zlib.crc32(f"{n}/{task}".encode())))
                      for i, n in enumerate(names)])


def prior_image(args, G, op, y, task, sigma):
    path = Path(args.cache) / f"{args.method}-{task}-{sigma}.pt"
    if path.exists():
        return torch.load(path)["prior"]
    res = restore.solve(y, op, G, method=args.method, preset=args.preset, seed=SEED, progress=False,
                        validate=FRACTION, consistency="none", sigma=sigma or None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"prior": res.prior_image}, path)
    return res.prior_image


def P(x, y, op, sigma):
    return damped(x, y, op, noise_lambda(x, y, op, sigma)) if sigma else project(x, y, op)


def dot(a, b):
    return (a * b).flatten(1).sum(1)


def iv_beta(xg, xcf, y, op, split, sigma):
    fit, held = Restricted(op, split.fit), Restricted(op, split.held)
    floor = float(held.weight.square().sum()) * sigma ** 2
    err = [((held.observe(y) - held(P(v, fit.observe(y), fit, sigma))).square().flatten(1).sum(1) - floor)
           .clamp_min(0) for v in (xg, xcf)]
    return err[1] / (err[0] + err[1]).clamp_min(1e-12)


def candidates(task, op, x, y, xg, sigma):
    shape, split = tuple(x.shape[1:]), holdout(y, op, FRACTION, SEED)
    xc, xcf = classical_baseline(op, y, shape)[1], classical_from_entries(op, y, shape, split.fit)
    out = {"classical": xc, "P(classical)": blend(xg, xc, 0.0, y, op, sigma=sigma),
           "P(prior)": blend(xg, xc, 1.0, y, op, sigma=sigma), "avg": blend(xg, xc, 0.5, y, op, sigma=sigma),
           "iv": blend(xg, xc, iv_beta(xg, xcf, y, op, split, sigma), y, op, sigma=sigma)}
    out["ls"] = anchor(xg, y, op, xc, split, classical_fit=xcf, sigma=sigma, margin=0.0)[0]
    out["anchor"], beta = anchor(xg, y, op, xc, split, classical_fit=xcf, sigma=sigma)
    base, d = P(xc, y, op, sigma), P(xg, y, op, sigma) - P(xc, y, op, sigma)
    b_or = (dot(x - base, d) / dot(d, d).clamp_min(1e-12)).clamp(0, 1)
    out["oracle"] = (base + b_or.view(-1, 1, 1, 1) * d).clamp(0, 1)
    if task == "cs2000":
        view = Restricted(op, split.fit)
        out["tv"] = real_data._tv(y, op, shape)
        out["anchor-tv"] = anchor(xg, y, op, out["tv"], split, classical_fit=real_data._tv(view.observe(y), view, shape),
                                  sigma=sigma)[0]
    return out, beta, b_or


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="sr4,sr8,hole32,inpaint80,color,cs2000")
    ap.add_argument("--noise", default="0,0.02")
    ap.add_argument("--n", type=int, default=4, help="images per domain")
    ap.add_argument("--method", default="latent")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--cache", default="/tmp/anchor")
    ap.add_argument("--out", default=str(_HERE / "results" / "anchor.md"))
    args = ap.parse_args(argv)
    x_all, names_all, n_in = images(args.n)
    G, net = priors.load("dcgan-digiface64", progress=False), lpips_network("cpu")
    lines = ["| task | noise | domain | " + " | ".join(["classical", "P(classical)", "P(prior)", "avg", "iv", "ls", "anchor",
                                                       "oracle", "tv", "anchor-tv"]) + " | anchor β |", "|" + " --- |" * 14]
    for task in args.tasks.split(","):
        op = real_data.build_task(task, 64)
        for sigma in [float(s) for s in args.noise.split(",")]:
            y = observe(op, x_all, names_all, task, sigma)
            xg = prior_image(args, G, op, y, task, sigma)
            cand, beta, _ = candidates(task, op, x_all, y, xg, sigma)
            for dom in ("in", "out"):
                sel = (torch.arange(len(x_all)) < n_in) == (dom == "in")
                if task == "color":
                    sel &= ~real_data.is_gray(x_all)
                cells = []
                for k in ("classical", "P(classical)", "P(prior)", "avg", "iv", "ls", "anchor", "oracle", "tv", "anchor-tv"):
                    if k not in cand:
                        cells.append("")
                        continue
                    est, ref = cand[k][sel].clamp(0, 1), x_all[sel]
                    p, q = float(restore.metrics.psnr(est, ref).mean()), float(restore.metrics.lpips(est, ref, net=net).mean())
                    cells.append(f"{p:.2f} / {q:.3f}")
                lines.append(f"| {task} | {sigma:g} | {dom} | " + " | ".join(cells) + " | "
                             + ", ".join(f"{b:.2f}" for b in beta[sel].tolist()) + " |")
                print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(f"# benchmarks/anchor.py ({args.method} {args.preset}, {args.n} dev images per domain, "
                              "PSNR dB / LPIPS)\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
