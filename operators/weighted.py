"""Per-entry weights on an operator's output: ``W A``, e.g. the whitening of heteroscedastic noise.

For Poisson counts ``k ~ Poisson(gain * A x)`` observed as ``y = k / gain``, each entry has
variance ``(A x) / gain``; weighting by ``w = sqrt(gain / max(y, 1 / gain))`` makes the noise of
``w y`` about unit-variance Gaussian, so a least-squares fit of ``(W A, w y)`` is the Gaussian
approximation of the Poisson likelihood (:func:`poisson_whitening`).

Example::

    >>> import torch
    >>> from operators import Downsample
    >>> A = Weighted(Downsample(2), torch.full((1, 3, 4, 4), 2.0))
    >>> x = torch.rand(1, 3, 8, 8)
    >>> bool(torch.allclose(A(x), 2 * Downsample(2)(x)))
    True
"""
from __future__ import annotations

from typing import Sequence

import torch

from ._checks import Dims
from .base import LinearOperator

__all__ = ["Weighted", "poisson_whitening"]


class Weighted(LinearOperator):
    """``w ⊙ A x``: ``operator`` ``(B, *in) -> (B, *out)`` with weights ``w`` ``(Bw, *out)``
    (``Bw = 1`` shared, else one row per sample: the view is then per-sample). Adjoint
    ``A*(w ⊙ y)``."""

    def __init__(self, operator: LinearOperator, weight: torch.Tensor):
        super().__init__()
        if not isinstance(operator, LinearOperator):
            raise TypeError(f"Weighted needs a LinearOperator, got {type(operator).__name__}")
        weight = torch.as_tensor(weight).detach()
        if weight.dim() < 1 or not torch.isfinite(weight).all():
            raise ValueError(f"Weighted: weight must be a finite tensor (Bw, *out), got shape {tuple(weight.shape)}")
        sizes = {s for s in (operator.batch_size, weight.shape[0] if weight.shape[0] > 1 else None) if s is not None}
        if len(sizes) > 1:
            raise ValueError(f"Weighted: weight batch {weight.shape[0]} and the operator's {operator.batch_size} differ")
        self.operator = operator
        self.register_buffer("weight", weight.float() if not weight.is_floating_point() else weight)
        self.batch_size = sizes.pop() if sizes else None

    @property
    def in_dims(self) -> Dims:
        return self.operator.in_dims

    def output_dims(self, in_dims: Sequence) -> Dims:
        return self.operator.output_dims(in_dims)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._check_batch(x, "input image")
        out = self.operator.A(x)
        return out * self.weight.to(out)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        return self.operator.A_adjoint(y * self.weight.to(y))

    def spec(self) -> dict:
        raise ValueError("a Weighted operator depends on its observation and is not serialized; "
                         "save the inner operator and the weights")


def poisson_whitening(y: torch.Tensor, gain: float) -> torch.Tensor:
    """Weights ``sqrt(gain / max(y, 1 / gain))`` ``(B, *out)`` that make Poisson noise of
    ``y = Poisson(gain * mean) / gain`` about unit-variance (``gain``: counts per unit intensity)."""
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0 or gain == float("inf"):
        raise ValueError(f"gain (counts per unit intensity) must be a finite number > 0, got {gain!r}")
    return (gain / y.detach().clamp(min=1.0 / gain)).sqrt()
