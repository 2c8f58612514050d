"""``ganrestore cs ... --samples N --uncertainty STD.png``: the posterior mean and a std map."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import torch

from ..io import load_observation
from .common import Console, UserError, solve_kwargs

__all__ = ["add_sampling_options", "wants_samples", "check_sampling", "run_samples", "MAX_SAMPLES"]

MAX_SAMPLES = 10_000  # posterior samples; more is a typo (each one is a Langevin chain's draw)

STD_HELP = ("write the per-pixel posterior std as a gray image: the std averaged over channels and "
            "divided by its maximum (white = the largest std, printed, and in --json as posterior.std_max)")


def add_sampling_options(p) -> None:
    """The ``cs`` sub-command's posterior-sampling options."""
    g = p.add_argument_group("posterior samples (uncertainty)")
    g.add_argument("--samples", type=int, default=0, metavar="N",
                   help="draw N posterior samples (restore.sample, Langevin on the latent) and write their "
                        "mean as -o (default 0: one solve)")
    g.add_argument("--sigma", type=float, metavar="S",
                   help="the noise std of the measurements (default: the noise_sigma the .npz records)")
    g.add_argument("--uncertainty", metavar="STD.png", help=STD_HELP)


def wants_samples(args) -> bool:
    return bool(getattr(args, "samples", 0)) or bool(getattr(args, "uncertainty", None))


def _sigma(args) -> float:
    sigma = args.sigma
    if sigma is None and str(args.input).lower().endswith(".npz"):
        sigma = float((load_observation(args.input)[2].get("meta") or {}).get("noise_sigma") or 0.0)
    if not sigma or sigma <= 0:
        raise UserError("--samples needs the noise std of the measurements: pass --sigma S > 0 "
                        "(or make the .npz with `ganrestore degrade ... --noise-sigma S`)")
    return float(sigma)


def check_sampling(args) -> float:
    """Refuse bad sampling options before any work; returns the noise std."""
    if not 0 <= args.samples <= MAX_SAMPLES:
        raise UserError(f"--samples must be between 0 and {MAX_SAMPLES}, got {args.samples}")
    if args.uncertainty and args.samples < 2:
        raise UserError(f"--uncertainty needs --samples N >= 2 (the std of N samples), got --samples {args.samples}")
    if args.method != "latent":
        raise UserError(f"--samples runs Langevin dynamics on one latent: use --method latent, got {args.method}")
    if args.uncertainty and Path(args.uncertainty).suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise UserError(f"cannot write {args.uncertainty}: use a .png image")
    return _sigma(args)


def run_samples(args, y, op, G, device, console: Console) -> Tuple[torch.Tensor, dict, Optional[torch.Tensor]]:
    """Posterior mean ``(1, C, H, W)``, the report's extra fields and the std map to write at
    ``--uncertainty`` ``(1, 1, H, W)`` in [0, 1] (or None)."""
    from ..sample import sample

    sigma = check_sampling(args)
    kw = solve_kwargs(args, console)
    kw.pop("method")
    steps = kw.pop("steps", None)
    post = sample(y.to(device), op.to(device), G.to(device), n=args.samples, sigma=sigma, solve_steps=steps, **kw)
    std = post.std.detach().cpu().mean(1, keepdim=True)
    std_max = float(std.max())
    extra = {"solver": post.options, "posterior": {
        "samples": args.samples, "sigma": sigma, "std_max": std_max, "std_mean": float(std.mean()),
        "acceptance": [round(float(a), 3) for a in post.acceptance]}}
    std_map = (std / std_max if std_max > 0 else std) if args.uncertainty else None
    return post.mean.detach().cpu(), extra, std_map
