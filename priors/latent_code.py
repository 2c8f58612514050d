"""One optimizable latent code per sample: the parametrization of plain GAN inversion.

Every parametrization (this one, :mod:`priors.multi_code`, :mod:`priors.dgp`) offers the same
small interface to the solver loop:

* ``forward() -> (B, C, H, W)`` images in ``[0, 1]``;
* ``groups() -> {name: [tensors (B, ...)]}`` the optimized leaves, grouped by learning rate;
* ``state() -> {name: tensor (B, ...)}`` what a result keeps of the best iterate;
* ``penalty() -> (B,)`` the latent-prior penalty ``(mean(z**2) - 1)**2``.

Example::

    >>> import torch
    >>> from torch import nn
    >>> import priors
    >>> G = priors.wrap(nn.Sequential(nn.Linear(8, 48), nn.Tanh(), nn.Unflatten(1, (3, 4, 4))), (8,))
    >>> code = LatentCode(G, G.sample_latents(2, seed=0))
    >>> code().shape, code.penalty().shape
    (torch.Size([2, 3, 4, 4]), torch.Size([2]))
"""
from __future__ import annotations

import torch
from torch import nn

from .class_vector import class_group, class_state, resolve_class

__all__ = ["LatentCode", "latent_penalty"]


def latent_penalty(z: torch.Tensor) -> torch.Tensor:
    """``(mean(z**2) - 1)**2`` per sample: how far ``z`` strays from the typical shell of a
    standard normal latent. ``(B, ...) -> (B,)``."""
    return (z.square().flatten(1).mean(1) - 1).square()


class LatentCode(nn.Module):
    """Codes ``z`` ``(B, *latent_shape)`` rendered by a frozen generator.

    Args:
        generator: a :class:`priors.Generator` (not modified).
        z: initial codes ``(B, *generator.latent_shape)``; copied.
        c: class labels for a conditional generator (``(B,)`` ids or ``(B, n_classes)``), else None;
            or a :class:`priors.class_vector.ClassVector` ``(B, n_classes)``, optimized jointly (group
            ``"class"``; its probabilities are the state ``"class"``).
    """

    def __init__(self, generator, z: torch.Tensor, c=None):
        super().__init__()
        from .base import check_latent

        check_latent(z, generator.latent_shape, "initial latent")
        self.generator = generator
        self.z = nn.Parameter(z.detach().clone())
        self.c = c

    def forward(self) -> torch.Tensor:
        return self.generator(self.z, resolve_class(self.c))

    def groups(self) -> dict:
        return {"latent": [self.z], **class_group(self.c)}

    def state(self) -> dict:
        return {"z": self.z.detach(), **class_state(self.c)}

    def penalty(self) -> torch.Tensor:
        return latent_penalty(self.z)
