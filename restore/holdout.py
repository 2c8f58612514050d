"""Self-validation: hold out a seeded fraction of the observed entries, fit the rest.

:func:`holdout` splits the *observed entries* of an observation into a fit set and a held-out
set (disjoint, together every observed entry). What an entry is depends on the observation:

* image-shaped observations ``(B, C, h, w)`` (``Mask``, ``Downsample``, ``Grayscale``): a pixel,
  all its channels together (channels of one pixel are too correlated to validate each other);
  with a ``Mask`` as the last operator only its observed pixels (never holes), per sample for a
  per-sample mask, per channel for a per-channel mask;
* any other observation, e.g. compressed sensing ``(B, m)``: one measurement.

:class:`Restricted` is the operator view that sees only some entries: ``A_K x = w ⊙ A x``
with ``w = keep * sqrt(n_observed / n_kept)`` (per sample), zeros outside ``keep``. It is a masked
output rather than a gather, so shapes, batching and every loss stay as they are, and the weight
keeps MSE means right: over a random split, ``mse(A_K x, A_K.observe(y))`` is an unbiased
estimate of the full ``mse(A x, y)`` (the mean over all output entries, a Mask's holes counted as
zeros), so the fit loss, the held-out loss and the full loss share one scale (loss thresholds
keep their meaning, held-out errors of different sizes compare). Divide by the observed fraction
for the mean over observed entries only; for operators without holes it is that mean exactly.

Example::

    >>> import torch
    >>> from operators import Downsample
    >>> from restore.losses import mse
    >>> A, x = Downsample(2), torch.rand(1, 3, 8, 8)
    >>> y = A(x)
    >>> split = holdout(y, A, fraction=0.25, seed=0)
    >>> int(split.held.sum()), int(split.fit.sum())        # of the 4 x 4 low-resolution pixels
    (4, 12)
    >>> fit = Restricted(A, split.fit)
    >>> float(mse(fit(x), fit.observe(y)))                 # x fits exactly
    0.0
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from operators import ComposedOperator, LinearOperator, Mask
from operators._checks import Dims

__all__ = ["Split", "holdout", "observed_entries", "Restricted"]


@dataclass(frozen=True)
class Split:
    """A seeded split of observed entries. ``fit``, ``held`` and ``observed`` are bool tensors of
    the same shape ``(Bk, *units)`` broadcasting against the observation ``(B, *out)``: ``Bk = 1``
    when every sample shares the split, ``B`` for per-sample masks. ``fit | held == observed``,
    ``fit & held`` is empty, and each row holds out ``round(fraction * its observed count)``."""

    fit: torch.Tensor
    held: torch.Tensor
    observed: torch.Tensor
    fraction: float
    seed: int


def _outer_mask(operator) -> Optional[Mask]:
    if isinstance(operator, Mask):
        return operator
    if isinstance(operator, ComposedOperator) and isinstance(operator.ops[-1], Mask):
        return operator.ops[-1]
    return None


def _units(shape: Sequence[int]) -> tuple:
    """Per-sample shape of the entry grid: ``(1, h, w)`` for images (pixels), else the observation's."""
    return (1, *shape[-2:]) if len(shape) == 3 else tuple(shape)


def observed_entries(operator, shape: Sequence[int]) -> torch.Tensor:
    """Bool ``(Bk, *units)`` marking the observed entries of observations of per-sample ``shape``.

    The last operator's mask when it is a ``Mask`` (``(Bm, Cm, h, w)``), every entry otherwise
    (``(1, 1, h, w)`` for image-shaped observations, ``(1, *shape)`` else).
    """
    mask = _outer_mask(operator)
    if mask is not None:
        return mask.mask.detach().cpu() > 0.5
    return torch.ones((1,) + _units(shape), dtype=torch.bool)


def _row_generator(seed: int, row: int) -> torch.Generator:
    """A CPU generator for row ``row`` of a split with ``seed`` (rows and seeds never collide)."""
    state = np.random.SeedSequence([seed, row]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _check_fraction(fraction) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be a number strictly between 0 and 1, got {fraction!r}")
    return float(fraction)


def holdout(observation: Union[torch.Tensor, Sequence[int]], operator=None, fraction: float = 0.1,
            seed: int = 0) -> Split:
    """A seeded random split of the observed entries into fit and held-out sets.

    Args:
        observation: the observation ``y`` ``(B, *out)`` or its shape.
        operator: the operator that made it (its last ``Mask`` says which entries are observed);
            ``None``: every entry is observed.
        fraction: share of each sample's observed entries held out, in ``(0, 1)``; every row must
            keep at least one entry on each side.
        seed: the split is a function of ``seed``, the row and the observed set only (not of the
            batch size), so a sample's split never depends on its batch mates.
    """
    fraction = _check_fraction(fraction)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"holdout seed must be a non-negative int, got {seed!r}")
    shape = tuple(observation.shape if isinstance(observation, torch.Tensor) else observation)
    if len(shape) < 2:
        raise ValueError(f"observation shape must be (B, ...), got {shape}")
    observed = observed_entries(operator, shape[1:])
    held = torch.zeros_like(observed)
    for row in range(observed.shape[0]):
        where = torch.nonzero(observed[row].flatten()).flatten()
        n_held = round(fraction * len(where))
        if n_held < 1 or n_held >= len(where):
            raise ValueError(f"holdout fraction {fraction} of {len(where)} observed entries (row {row}) leaves "
                             f"an empty fit or held-out set; use a fraction in "
                             f"[{0.5 / max(len(where), 1):.3g}, {1 - 0.5 / max(len(where), 1):.3g}]")
        pick = where[torch.randperm(len(where), generator=_row_generator(int(seed), row))[:n_held]]
        held[row].view(-1)[pick] = True
    return Split(fit=observed & ~held, held=held, observed=observed, fraction=fraction, seed=int(seed))


class Restricted(LinearOperator):
    """The view of ``operator`` that outputs only the ``keep`` entries: ``w ⊙ A x``, zeros elsewhere.

    Args:
        operator: a ``LinearOperator``.
        keep: 0/1 or bool ``(Bk, *units)`` broadcasting against the operator's output (a
            :class:`Split`'s ``fit`` or ``held``); ``Bk > 1`` makes the view per-sample.
        observed: the operator's observed entries (default :func:`observed_entries`), for the
            weight ``w = keep * sqrt(n_observed / n_kept)`` per row (see the module docstring).

    Shapes: those of ``operator``, ``(B, *in) -> (B, *out)``. Fit with
    ``restore.solve(view.observe(y), view, prior)``; score with ``mse(view(x), view.observe(y))``.
    """

    def __init__(self, operator: LinearOperator, keep: torch.Tensor, observed: Optional[torch.Tensor] = None):
        super().__init__()
        if not isinstance(operator, LinearOperator):
            raise TypeError(f"Restricted needs a LinearOperator, got {type(operator).__name__}")
        keep = torch.as_tensor(keep).detach().cpu().bool()
        sizes = {s for s in (operator.batch_size, keep.shape[0] if keep.shape[0] > 1 else None) if s is not None}
        if keep.dim() < 2 or len(sizes) > 1:
            raise ValueError(f"Restricted: keep {tuple(keep.shape)} must be (Bk, *units) with Bk = 1 or the "
                             f"per-sample operator's batch size {operator.batch_size}")
        observed = observed_entries(operator, keep.shape[1:]) if observed is None else torch.as_tensor(observed)
        observed = observed.detach().cpu().bool()
        if observed.shape[1:] != keep.shape[1:]:
            raise ValueError(f"Restricted: keep {tuple(keep.shape)} and observed {tuple(observed.shape)} differ")
        kept, seen = keep.flatten(1).sum(1), observed.flatten(1).sum(1)
        if bool((kept == 0).any()):
            empty = torch.nonzero(kept == 0).flatten().tolist()
            raise ValueError(f"Restricted: keep selects no entry in row(s) {empty}")
        scale = (seen.double() / kept.double()).sqrt().view(-1, *([1] * (keep.dim() - 1)))
        self.operator = operator
        self.register_buffer("weight", (keep.double() * scale).float())
        self.batch_size = sizes.pop() if sizes else None

    @property
    def in_dims(self) -> Dims:
        return self.operator.in_dims

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        return self.operator.output_dims(in_dims)

    def _w(self, t: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(dtype=t.dtype, device=t.device)
        try:
            torch.broadcast_shapes(w.shape, t.shape)
        except RuntimeError as err:
            raise ValueError(f"Restricted: keep of shape {tuple(w.shape)} does not broadcast against the "
                             f"operator's output {tuple(t.shape)}") from err
        return w

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self._check_batch(x, "input image")
        out = self.operator.A(x)
        return out * self._w(out)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        return self.operator.A_adjoint(y * self._w(y))

    def observe(self, y: torch.Tensor) -> torch.Tensor:
        """The observation this view fits: ``w ⊙ y`` ``(B, *out)``."""
        self.check_observation(y)
        return y * self._w(y)

    def extra_repr(self) -> str:
        kept = int((self.weight > 0).sum())
        return f"operator={type(self.operator).__name__}, kept={kept} of {self.weight.numel()} entries"
