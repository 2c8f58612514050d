"""The noise model of an observation: what a solve fits, and the floor where a fit is done.

* Gaussian noise of a known std ``sigma``: the data fit is the MSE; a sample is at its noise
  floor when its MSE reaches ``sigma**2`` (the discrepancy principle, ``|A x - y|^2 = m sigma^2``
  over the ``m`` entries), and the returned image is made consistent with the damped form.
* ``sigma="auto"``: ``sigma`` estimated per sample from the residual floor of a quick fit
  (:func:`estimate_sigma`).
* Poisson noise ``y = Poisson(gain * A x) / gain``: the observation and operator are whitened
  (:func:`operators.poisson_whitening`: each entry divided by its std ``sqrt(max(y, 1/gain)/gain)``),
  so the MSE fit is the Gaussian approximation of the Poisson likelihood and the floor is 1.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from operators import LinearOperator, Weighted, poisson_whitening

__all__ = ["NoiseModel", "noise_model", "estimate_sigma", "NOISES"]

NOISES = ("gaussian", "poisson")


@dataclass(frozen=True)
class NoiseModel:
    """``y`` ``(B, ...)`` and ``operator`` as the solve fits them (whitened for Poisson);
    ``sigma`` ``(B,)`` the noise std of ``y`` in that space, or None when unknown."""

    y: torch.Tensor
    operator: Callable
    sigma: Optional[torch.Tensor] = None

    @property
    def floor(self) -> Optional[torch.Tensor]:
        """``(B,)`` the MSE noise floor ``sigma**2``, or None."""
        return None if self.sigma is None else self.sigma.double() ** 2


def _check_sigma(sigma) -> None:
    if sigma is None or sigma == "auto":
        return
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0 (the noise std of y), 'auto' or None, got {sigma!r}")


def noise_model(y: torch.Tensor, operator, sigma=None, noise: str = "gaussian", gain: Optional[float] = None,
                mse_loss: bool = True) -> NoiseModel:
    """The :class:`NoiseModel` of ``y`` (``sigma="auto"`` is resolved by the caller with
    :func:`estimate_sigma`). Raises ``ValueError`` before any work for a bad combination."""
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
    _check_sigma(sigma)
    if (sigma not in (None, 0) or noise == "poisson") and not mse_loss:
        raise ValueError("sigma and noise='poisson' set the MSE noise floor: they need loss='mse' (the default)")
    if noise == "gaussian":
        if gain is not None:
            raise ValueError("gain is the Poisson counts per unit intensity: pass it with noise='poisson'")
        s = None if sigma in (None, "auto") else torch.full((y.shape[0],), float(sigma), device=y.device)
        return NoiseModel(y, operator, s)
    if sigma is not None:
        raise ValueError("noise='poisson' takes gain=..., not sigma (its std follows from the counts)")
    if not isinstance(operator, LinearOperator):
        raise ValueError("noise='poisson' needs an operators.LinearOperator (the fit is whitened)")
    w = poisson_whitening(y, gain)
    return NoiseModel(y * w, Weighted(operator, w).to(y.device), torch.ones(y.shape[0], device=y.device))


def estimate_sigma(residual_mse: torch.Tensor, entries: int, dof: int) -> torch.Tensor:
    """``(B,)`` noise std from the residual floor of a fit: ``sqrt(mse * m / (m - d))`` for ``m``
    entries per sample and ``d`` fitted parameters (the least-squares correction for the
    degrees of freedom the fit used up; ``d`` is clipped to ``m - 1``)."""
    m, d = max(int(entries), 1), min(int(dof), max(int(entries) - 1, 0))
    return (residual_mse.double().clamp(min=0) * m / (m - d)).sqrt()
