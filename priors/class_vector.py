"""An optimizable soft class vector for conditional priors (DGP optimizes the class jointly).

Per-sample logits ``(B, n_classes)``; the forward gives their softmax, a ``(B, n_classes)`` class
vector of probabilities that every conditional family accepts as its class input ``c`` (a soft
mixture of class embeddings, as DGP uses). The parametrizations (:class:`priors.latent_code.LatentCode`,
:class:`priors.multi_code.MultiCode`, :class:`priors.dgp.DeepPrior`) take a :class:`ClassVector`
as their ``c``: they render with its probabilities, optimize its logits as the group ``"class"``
and keep its probabilities as the state ``"class"``.

A start class (ids or a vector) is mixed with the uniform distribution, ``(1 - mix) * p + mix /
n_classes`` (``mix = 0.01`` by default): logits are finite, and the softmax starts within 1% of
the given class while Adam (steps of about ``lr`` per logit) can still move it.

Example::

    >>> import torch
    >>> cv = ClassVector.from_class(torch.tensor([2, 0]), n_classes=4)
    >>> p = cv()
    >>> p.shape, p.argmax(1).tolist(), round(float(p[0, 2]), 4)
    (torch.Size([2, 4]), [2, 0], 0.9925)
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["ClassVector", "as_probabilities", "resolve_class", "class_group", "class_state"]


def as_probabilities(c, n_classes: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``c`` as ``(B, n_classes)`` probabilities: integer ids ``(B,)`` become one-hot rows; float
    vectors ``(B, n_classes)`` are clamped at 0 and normalised to sum 1 per row.

    Raises ``ValueError`` on other shapes, ids outside ``0..n_classes-1`` or a row without
    positive mass.
    """
    if not isinstance(c, torch.Tensor):
        c = torch.as_tensor(c)
    if not c.is_floating_point():
        if c.dim() != 1:
            raise ValueError(f"class ids must have shape (B,), got {tuple(c.shape)}")
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= n_classes):
            raise ValueError(f"class ids must lie in 0..{n_classes - 1}, got {c.tolist()}")
        dtype = dtype or torch.get_default_dtype()
        return (c[:, None] == torch.arange(n_classes, device=c.device)).to(dtype)
    if c.dim() != 2 or c.shape[1] != n_classes:
        raise ValueError(f"a class vector must have shape (B, {n_classes}), got {tuple(c.shape)}")
    p = c.detach().clamp(min=0).to(dtype or c.dtype)
    mass = p.sum(1, keepdim=True)
    if not bool((mass > 0).all()):
        bad = torch.nonzero(mass[:, 0] <= 0).flatten().tolist()
        raise ValueError(f"class vector rows {bad} have no positive entry: cannot start a class vector from them")
    return p / mass


class ClassVector(nn.Module):
    """Per-sample class logits ``(B, n_classes)``; ``forward() -> (B, n_classes)`` softmax
    probabilities in ``[0, 1]``, rows summing to 1.

    Args:
        logits: initial logits ``(B, n_classes)``; copied. See :meth:`from_class` to start from
            class ids or vectors.
    """

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
            raise ValueError(f"logits must be a float tensor (B, n_classes), got "
                             f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
        self.logits = nn.Parameter(logits.detach().clone())

    @classmethod
    def from_class(cls, c, n_classes: int, mix: float = 0.01, dtype: Optional[torch.dtype] = None) -> "ClassVector":
        """Start from ``c`` (ids ``(B,)`` or vectors ``(B, n_classes)``, see :func:`as_probabilities`)
        mixed with ``mix`` of the uniform distribution (``0 < mix <= 1``)."""
        if not 0 < mix <= 1:
            raise ValueError(f"mix must be in (0, 1] (finite logits need some uniform mass), got {mix}")
        p = as_probabilities(c, n_classes, dtype)
        return cls(((1 - mix) * p + mix / n_classes).log())

    @property
    def n_classes(self) -> int:
        return self.logits.shape[1]

    def forward(self) -> torch.Tensor:
        return self.logits.softmax(1)

    def take(self, rows: torch.Tensor) -> "ClassVector":
        """A new :class:`ClassVector` with the current logits of ``rows`` (a LongTensor)."""
        return ClassVector(self.logits.detach().index_select(0, rows))

    @torch.no_grad()
    def set_probabilities(self, p: torch.Tensor) -> None:
        """Set the logits so that the forward gives ``p`` ``(B, n_classes)`` (rows summing to 1;
        entries are floored at the dtype's smallest normal number)."""
        if tuple(p.shape) != tuple(self.logits.shape):
            raise ValueError(f"probabilities must have shape {tuple(self.logits.shape)}, got {tuple(p.shape)}")
        self.logits.copy_(p.to(self.logits).clamp(min=torch.finfo(self.logits.dtype).tiny).log())


def resolve_class(c):
    """The class input to render with: ``c()`` for a :class:`ClassVector`, else ``c`` itself
    (ids ``(B,)``, a vector ``(B, n_classes)`` or None)."""
    return c() if isinstance(c, ClassVector) else c


def class_group(c) -> dict:
    """``{"class": [logits]}`` for a :class:`ClassVector` (an optimizer group), else ``{}``."""
    return {"class": [c.logits]} if isinstance(c, ClassVector) else {}


def class_state(c) -> dict:
    """``{"class": (B, n_classes) probabilities}`` (detached) for a :class:`ClassVector`, else ``{}``."""
    return {"class": c().detach()} if isinstance(c, ClassVector) else {}
