"""Input validation and seed handling shared by every operator, mask generator and noise model."""
from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple

import torch

Dims = Tuple[Optional[int], ...]

__all__ = ["check_tensor", "check_finite", "check_sizes", "check_image_shape", "format_dims", "draw_seed",
           "seeded_generator"]


def format_dims(dims: Sequence[Optional[int]]) -> str:
    """Render per-sample dims such as ``(3, None, None)`` as ``(B, 3, H, W)`` for messages."""
    names = {1: "N", 2: "HW", 3: "CHW"}.get(len(dims)) or [f"d{i}" for i in range(len(dims))]
    parts = ["B"] + [str(d) if d is not None else names[i] for i, d in enumerate(dims)]
    return "(" + ", ".join(parts) + ")"


def check_tensor(t, what: str, dims: Sequence[Optional[int]], owner: str = "") -> None:
    """Check that ``t`` is a real floating tensor of shape ``(B, *dims)``.

    ``dims`` holds one entry per non-batch dimension; ``None`` accepts any size there.
    Raises ``TypeError`` for a non-tensor or non-float tensor, ``ValueError`` for a wrong
    number of dimensions or a wrong size, naming the expected and the received shapes.
    """
    prefix = f"{owner}: " if owner else ""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{prefix}{what} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{prefix}{what} must be a real floating-point tensor (float32/float64), "
                        f"got dtype {t.dtype}")
    expected = format_dims(dims)
    if t.dim() != len(dims) + 1:
        raise ValueError(f"{prefix}{what} must have shape {expected}, got {tuple(t.shape)} "
                         f"({t.dim()} dimensions instead of {len(dims) + 1})")
    for axis, (want, got) in enumerate(zip(dims, t.shape[1:]), start=1):
        if want is not None and want != got:
            raise ValueError(f"{prefix}{what} must have shape {expected}, got {tuple(t.shape)} "
                             f"(dimension {axis} is {got}, expected {want})")


def check_sizes(shape: Sequence[int], what: str, example: str = "(C, H, W)") -> Tuple[int, ...]:
    """``shape`` as a non-empty tuple of positive ints; ``ValueError`` naming ``what`` otherwise."""
    try:
        dims = tuple(int(s) for s in shape)
        ok = len(dims) >= 1 and all(d >= 1 and d == s for d, s in zip(dims, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{what} must be a tuple of positive ints such as {example}, got {shape!r}")
    return dims


def check_image_shape(shape: Sequence[int], owner: str) -> Tuple[int, int, int]:
    """``shape`` as a ``(C, H, W)`` tuple of positive ints, else ``ValueError`` naming ``owner``."""
    try:
        dims = tuple(int(s) for s in shape)
        ok = len(dims) == 3 and all(d >= 1 and d == s for d, s in zip(dims, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{owner} shape must be (C, H, W) with positive ints, got {shape!r}")
    return dims


def check_finite(t: torch.Tensor, what: str, owner: str = "") -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or infinite values (forces a device sync)."""
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        prefix = f"{owner}: " if owner else ""
        n_nan = int(torch.isnan(t).sum())
        raise ValueError(f"{prefix}{what} must be finite, got {n_nan} NaN and "
                         f"{int(bad.sum()) - n_nan} infinite values out of {t.numel()}")


def draw_seed() -> int:
    """A fresh non-deterministic seed (from the OS entropy source, never the global RNG)."""
    return int(torch.Generator(device="cpu").seed())


def seeded_generator(seed: Optional[int]) -> Tuple[torch.Generator, int]:
    """A private CPU ``torch.Generator`` and the seed it uses (drawn fresh when ``seed`` is None).

    Randomness is always drawn on the CPU so that the same seed gives the same operator
    whatever device it later moves to.
    """
    if seed is None:
        seed = draw_seed()
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return gen, seed
