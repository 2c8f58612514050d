"""The real-image benchmark's data: fixtures, tasks (operators) and classical baselines.

Fixtures live in ``benchmarks/data/real/{in-domain,out-of-domain}/`` (64x64 PNGs; sources and
licences in its README). Tasks are built for a square image side ``size`` (64 = the prior's):

=========  ==========================================  ==========================================
task       operator                                    classical baselines
=========  ==========================================  ==========================================
sr4, sr8   ``Downsample(4 or 8, "bicubic")``           bicubic upsampling
hole32     ``Mask``: centred square hole, side size/2  biharmonic inpainting
inpaint80  ``Mask``: 80% random pixels missing (seed)  biharmonic inpainting
color      ``Grayscale()``                             gray copy (gray truths are left out)
cs2000     ``CompressedSensing(m, gaussian, seed)``,   pseudo-inverse, and TV by FISTA (lambda per
           m = 2000 * (size/64)^2                      image by held-out residual)
=========  ==========================================  ==========================================
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from operators import CompressedSensing, Downsample, Grayscale, Mask, masks
from restore import classical
from restore.tasks import classical_baseline

DATA = Path(__file__).resolve().parent / "data" / "real"
DOMAINS = ("in-domain", "out-of-domain")
SPLITS = ("all", "dev", "heldout")
OPERATOR_SEED = 0

__all__ = ["DATA", "DOMAINS", "SPLITS", "TASKS", "BASELINES", "load_real", "is_gray", "build_task"]


def load_real(domain: str, *, split: str = "all", n: int = 0, size: int = 64) -> Tuple[torch.Tensor, List[str]]:
    """``(images (N, 3, size, size) in [0, 1], names)`` of one fixture domain, in file order.

    ``split``: "all", "dev" (even files) or "heldout" (odd files); ``n`` > 0 keeps the first ``n``.
    ``size`` != 64 resizes the 64x64 fixtures (antialiased bicubic; above 64 it only interpolates).
    """
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; choose one of {', '.join(DOMAINS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    files = sorted((DATA / domain).glob("*.png"))
    if split != "all":
        files = [f for f in files if f.name.split("-")[1] == split]
    files = files[:n] if n > 0 else files
    if not files:
        raise FileNotFoundError(f"no {split} fixtures in {DATA / domain}")
    arr = np.stack([np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255 for f in files])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return x, [f.stem for f in files]


def is_gray(x: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: the image's three channels are equal (to 1/255)."""
    return (x - x.mean(1, keepdim=True)).abs().flatten(1).amax(1) < 1.0 / 255


def _mask(m) -> torch.Tensor:
    """A generated ``(H, W)`` mask as the ``(1, 1, H, W)`` float tensor ``Mask`` takes."""
    m = torch.as_tensor(m, dtype=torch.float32)
    return m.reshape(1, 1, *m.shape[-2:])


def _cs_m(size: int) -> int:
    return max(1, round(2000 * (size / 64) ** 2))


TASKS: Dict[str, Callable[[int], object]] = {  # name -> (image side -> operator)
    "sr4": lambda s: Downsample(4, kernel="bicubic"),
    "sr8": lambda s: Downsample(8, kernel="bicubic"),
    "hole32": lambda s: Mask(_mask(masks.box((s, s), size=s // 2))),
    "inpaint80": lambda s: Mask(_mask(masks.random_pixels((s, s), keep=0.2, seed=OPERATOR_SEED))),
    "color": lambda s: Grayscale(),
    "cs2000": lambda s: CompressedSensing(_cs_m(s), (3, s, s), kind="gaussian", seed=OPERATOR_SEED),
}


def _tasks_baseline(y, op, shape):
    return classical_baseline(op, y, shape)[1]


def _tv(y, op, shape):
    return classical.sparse_reconstruct(y, op, shape, regularizer="tv", seed=OPERATOR_SEED)


BASELINES: Dict[str, Dict[str, Callable]] = {  # task -> {baseline name: (y, op, shape) -> (B, C, H, W)}
    "sr4": {"bicubic": _tasks_baseline},
    "sr8": {"bicubic": _tasks_baseline},
    "hole32": {"biharmonic": _tasks_baseline},
    "inpaint80": {"biharmonic": _tasks_baseline},
    "color": {"gray copy": _tasks_baseline},
    "cs2000": {"pseudo-inverse": lambda y, op, shape: classical.pseudo_inverse(y, op, shape), "tv-fista": _tv},
}


def build_task(task: str, size: int):
    """The operator of ``task`` for images ``(3, size, size)``; ``ValueError`` for unknown names or sizes."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if task.startswith("sr") and size % int(task[2:]):
        raise ValueError(f"{task} needs an image side divisible by {task[2:]}, got {size}")
    return TASKS[task](size)
