"""Multi-code GAN prior (mGANprior, Gu et al., CVPR 2020) as an optimizable parametrization.

``N`` codes per sample each produce features at split block ``k``; the features are mixed with a
learned importance per code and per channel, and the rest of the generator renders once:

    x_b = G_tail( sum_n alpha[b, n, :] * G_head(z[b, n]) )

All ``N`` codes of all ``B`` samples go through the head as *one* batch of ``B * N``. Priors whose
tail blocks are conditioned on the latent (:attr:`Generator.needs_latent_in_tail`, e.g. StyleGAN2)
also get one optimized tail latent per sample, initialised from the first code.

Example::

    >>> import torch
    >>> from torch import nn
    >>> import priors
    >>> net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 48), nn.Tanh(), nn.Unflatten(1, (3, 4, 4)))
    >>> G = priors.wrap(net, latent_shape=(8,))
    >>> mc = MultiCode(G, G.sample_latents(2 * 5, seed=0).view(2, 5, 8), split=2)
    >>> mc().shape, mc.importance.shape
    (torch.Size([2, 3, 4, 4]), torch.Size([2, 5, 32]))
"""
from __future__ import annotations

import torch
from torch import nn

from .class_vector import class_group, class_state, resolve_class
from .latent_code import latent_penalty

__all__ = ["MultiCode", "default_split"]


def default_split(generator) -> int:
    """A third of the generator's blocks, rounded down, at least 1 (at most the last block): the
    ``N``-fold head stays cheap and the mixed features still carry spatial structure."""
    n = len(generator.blocks)
    return max(1, min(n - 1, n // 3)) if n > 1 else 0


class MultiCode(nn.Module):
    """``N`` codes per sample mixed at block ``split``.

    Args:
        generator: a :class:`priors.Generator` (not modified).
        z: initial codes ``(B, N, *latent_shape)``.
        split: the block index ``k`` (0..len(blocks)) where features mix.
        c: class labels (``(B,)`` or ``(B, n_classes)``) or None; or a
            :class:`priors.class_vector.ClassVector` optimized jointly (group and state ``"class"``),
            one class vector per sample shared by its ``N`` codes.
        importance: ``"best"`` (weight 1 on code 0, 0 elsewhere: starts at ``G(z[:, 0])``) or
            ``"uniform"`` (``1/N`` each).
    """

    def __init__(self, generator, z: torch.Tensor, split: int, c=None, importance: str = "best"):
        super().__init__()
        generator._check_split(split)
        lat = tuple(generator.latent_shape)
        if z.dim() != len(lat) + 2 or tuple(z.shape[2:]) != lat:
            raise ValueError(f"codes must have shape (B, N, {', '.join(map(str, lat))}), got {tuple(z.shape)}")
        self.generator, self.split, self.c = generator, split, c
        self.batch, self.n_codes = z.shape[0], z.shape[1]
        self.z = nn.Parameter(z.detach().clone())
        with torch.no_grad():
            c0 = resolve_class(c)
            feat = generator.features(z[:1, 0], split, None if c0 is None else c0[:1])
        self.feature_shape = tuple(feat.shape[1:])
        channels = self.feature_shape[0] if self.feature_shape else 1
        if importance == "best":
            alpha = torch.zeros(self.batch, self.n_codes, channels)
            alpha[:, 0] = 1.0
        elif importance == "uniform":
            alpha = torch.full((self.batch, self.n_codes, channels), 1.0 / self.n_codes)
        else:
            raise ValueError(f"importance must be 'best' or 'uniform', got {importance!r}")
        self.importance = nn.Parameter(alpha.to(z))
        self.tail = nn.Parameter(z[:, 0].detach().clone()) if generator.needs_latent_in_tail else None

    def _repeat_c(self, c):
        """``c`` ``(B, ...)`` repeated for each code: ``(B * N, ...)`` (None stays None)."""
        if c is None:
            return None
        return c.repeat_interleave(self.n_codes, dim=0)

    def forward(self) -> torch.Tensor:
        B, N = self.batch, self.n_codes
        c = resolve_class(self.c)
        h = self.generator.features(self.z.flatten(0, 1), self.split, self._repeat_c(c))
        h = h.view(B, N, *self.feature_shape)
        w = self.importance.view(B, N, -1, *([1] * (len(self.feature_shape) - 1)))
        mixed = (h * w).sum(1)
        return self.generator.from_features(mixed, self.split, c, z=self.tail)

    def groups(self) -> dict:
        codes = [self.z] + ([self.tail] if self.tail is not None else [])
        return {"latent": codes, "importance": [self.importance], **class_group(self.c)}

    def state(self) -> dict:
        out = {"codes": self.z.detach(), "importance": self.importance.detach(), **class_state(self.c)}
        if self.tail is not None:
            out["tail"] = self.tail.detach()
        return out

    def penalty(self) -> torch.Tensor:
        """Mean over codes of :func:`priors.latent_code.latent_penalty`: ``(B,)``."""
        return latent_penalty(self.z.flatten(0, 1)).view(self.batch, self.n_codes).mean(1)
