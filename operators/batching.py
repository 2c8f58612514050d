"""Views of an operator for other batches than the one it was built for.

A per-sample operator (``batch_size`` set, e.g. a :class:`operators.Mask` holding one mask per
sample) only takes batches of exactly ``batch_size`` images. A solver that treats every sample
independently needs it on other batches too:

* :class:`Subset`: the samples ``idx`` of the batch (``(S, C, H, W)`` images, ``S = len(idx)``);
* :class:`Repeated`: ``m`` rows per sample (``(B * m, C, H, W)``, parallel starts);
* :class:`Row`: sample ``b``'s operator applied to any number of candidate images.

An operator shared by all samples (``batch_size`` None) passes through each view unchanged.

Example::

    >>> import torch
    >>> from operators import Mask, masks
    >>> A = Mask(masks.random_pixels((3, 1, 4, 4), keep=0.5, seed=0))   # one mask per sample
    >>> x = torch.rand(3, 1, 4, 4)
    >>> idx = torch.tensor([0, 2])
    >>> torch.equal(Subset(A, idx, 3)(x[idx]), A(x)[idx])
    True
    >>> Repeated(Subset(A, idx, 3), 2)(x[idx].repeat_interleave(2, 0)).shape
    torch.Size([4, 1, 4, 4])
"""
from __future__ import annotations

import torch

__all__ = ["is_per_sample", "Subset", "Repeated", "Row"]


def is_per_sample(operator) -> bool:
    """Whether ``operator`` holds one setting per sample (then it only takes batches of that size)."""
    return getattr(operator, "batch_size", None) is not None


class Subset:
    """``operator`` as seen by the samples ``idx`` ``(S,)`` of a batch of ``batch``: maps
    ``(S, C, H, W) -> (S, ...)``. A per-sample operator gets the full batch, zero-padded, and
    rows ``idx`` of its output are kept."""

    def __init__(self, operator, idx: torch.Tensor, batch: int):
        self.operator, self.idx, self.batch = operator, idx, batch
        self.batch_size = len(idx) if is_per_sample(operator) else None

    def __call__(self, x):
        if not is_per_sample(self.operator) or len(self.idx) == self.batch:
            return self.operator(x)
        full = x.new_zeros((self.batch, *x.shape[1:]))
        full = full.index_copy(0, self.idx, x)
        return self.operator(full).index_select(0, self.idx)


class Repeated:
    """``operator`` applied to ``(B * m, C, H, W)`` images, ``m`` consecutive rows per sample
    (per-sample when ``operator`` is: then it takes batches of ``batch_size * m``)."""

    def __init__(self, operator, m: int):
        self.operator, self.m = operator, m
        self.batch_size = operator.batch_size * m if is_per_sample(operator) else None

    def __call__(self, x):
        if self.m == 1:
            return self.operator(x)
        parts = x.unflatten(0, (-1, self.m)).unbind(1)
        return torch.stack([self.operator(p) for p in parts], 1).flatten(0, 1)


class Row:
    """Sample ``b``'s view of an operator for a batch of candidates ``(k, C, H, W) -> (k, ...)``
    (a per-sample operator is applied to a full batch of each candidate and row ``b`` kept)."""

    def __init__(self, operator, b: int):
        self.operator, self.b, self.batch_size = operator, b, None
        self.per = is_per_sample(operator)

    def __call__(self, x):
        if not self.per:
            return self.operator(x)
        n = self.operator.batch_size
        return torch.stack([self.operator(img.expand(n, *img.shape))[self.b] for img in x])
