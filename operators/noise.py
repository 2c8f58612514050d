"""Noise models that turn a clean observation ``A(x)`` into a simulated measurement.

They are used by ``op.degrade(x, noise)``; solvers still see the linear operator only. Each
model owns a private CPU ``torch.Generator`` seeded at construction (``seed=None`` draws a fresh
seed, recorded as ``.seed``): successive calls continue the same random stream, ``reset()``
rewinds it, and the noise is the same whatever device the observation is on.
"""
from __future__ import annotations

import numbers
from typing import Optional

import torch

from ._checks import check_finite, seeded_generator

__all__ = ["GaussianNoise", "PoissonNoise"]


def _check_observation(y, owner: str) -> None:
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{owner}: observation must be a torch.Tensor, got {type(y).__name__}")
    if not y.is_floating_point():
        raise TypeError(f"{owner}: observation must be a real floating-point tensor, got dtype {y.dtype}")
    check_finite(y, "observation", owner)


def _check_positive(value, name: str, owner: str, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner} {name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner} {name} must be finite and {bound}, got {value}")
    return value


class _Noise:
    """Shared seeding, ``reset`` and ``spec`` for the noise models."""

    def __init__(self, seed: Optional[int]):
        self._gen, self.seed = seeded_generator(seed)

    def reset(self) -> None:
        """Rewind the random stream to its seed."""
        self._gen.manual_seed(self.seed)

    def _draw(self, fn, y: torch.Tensor) -> torch.Tensor:
        return fn(y.detach().to("cpu", torch.float64)).to(device=y.device, dtype=y.dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec().items() if k != "type")
        return f"{type(self).__name__}({args})"


class GaussianNoise(_Noise):
    """Additive white Gaussian noise: ``y + sigma * N(0, 1)``, same shape and dtype as ``y``.

    ``sigma`` is in the units of the observation (images in ``[0, 1]``: ``sigma=0.05`` is 5% of
    the range). The output is not clipped.

    Example::

        >>> import torch
        >>> from operators import GaussianNoise
        >>> noise = GaussianNoise(0.1, seed=0)
        >>> y = noise(torch.zeros(1, 3, 64, 64))
        >>> round(float(y.std()), 1)
        0.1
    """

    def __init__(self, sigma: float, seed: Optional[int] = None):
        self.sigma = _check_positive(sigma, "sigma", "GaussianNoise", allow_zero=True)
        super().__init__(seed)

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        _check_observation(y, "GaussianNoise")
        noise = self._draw(lambda t: torch.randn(t.shape, generator=self._gen, dtype=t.dtype), y)
        return y + self.sigma * noise

    def spec(self) -> dict:
        return {"type": "GaussianNoise", "sigma": self.sigma, "seed": self.seed}


class PoissonNoise(_Noise):
    """Photon (shot) noise: ``gain * Poisson(y / gain)``, same shape and dtype as ``y``.

    ``gain`` is the intensity of one photon: the mean is ``y`` and the variance ``gain * y``, so a
    larger gain means fewer photons and more noise (``gain=1/255`` is ~255 photons at intensity 1).
    ``y`` must be non-negative (intensities: ``Mask``, ``Downsample``, ``Grayscale``), not e.g.
    compressed-sensing measurements.
    """

    def __init__(self, gain: float, seed: Optional[int] = None):
        self.gain = _check_positive(gain, "gain", "PoissonNoise", allow_zero=False)
        super().__init__(seed)

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        _check_observation(y, "PoissonNoise")
        low = float(y.min()) if y.numel() else 0.0
        if low < 0:
            raise ValueError(f"PoissonNoise needs a non-negative observation (intensities), got minimum {low:.4g}")
        counts = self._draw(lambda t: torch.poisson(t / self.gain, generator=self._gen), y)
        return counts * self.gain

    def spec(self) -> dict:
        return {"type": "PoissonNoise", "gain": self.gain, "seed": self.seed}
