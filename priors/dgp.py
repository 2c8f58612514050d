"""Deep generative prior (DGP, Pan et al., ECCV 2020): a latent plus per-sample fine-tuned blocks.

Each of the ``B`` samples owns a copy of the parameters of the generator's first ``blocks``
blocks, stored *stacked* as ``(B, *param.shape)``; the images of all samples come from one call of
``torch.func.vmap`` over ``torch.func.functional_call``, so the ``B`` fine-tunings run batched. The
shared frozen generator is never modified. The optimized groups are ``"latent"`` and
``"block<i>"`` (one per fine-tunable block) so that stages can unfreeze blocks progressively.

Example::

    >>> import torch
    >>> from torch import nn
    >>> import priors
    >>> G = priors.wrap(nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 48), nn.Tanh(),
    ...                               nn.Unflatten(1, (3, 4, 4))), (8,))
    >>> dgp = DeepPrior(G, G.sample_latents(3, seed=0), blocks=3)
    >>> dgp.unfreeze(3)
    >>> dgp().shape, sorted(dgp.groups())
    (torch.Size([3, 3, 4, 4]), ['block0', 'block2', 'latent'])
    >>> one = dgp.generator_for(1)   # sample 1's fine-tuned generator, a plain Generator
"""
from __future__ import annotations


import torch
from torch import nn
from torch.func import functional_call, vmap

from .class_vector import class_group, class_state, resolve_class
from .latent_code import latent_penalty

__all__ = ["DeepPrior", "block_parameter_names"]


def block_parameter_names(generator, blocks: int) -> list:
    """``[(block index, [parameter names])]`` for the first ``blocks`` blocks (clipped to the
    generator's), from :meth:`Generator.block_parameters` so families may add stem-side modules."""
    names = {id(p): n for n, p in generator.named_parameters()}
    out, seen = [], set()
    for i in range(min(blocks, len(generator.blocks))):
        ps = [p for p in generator.block_parameters(i + 1) if id(p) not in seen and id(p) in names]
        seen.update(id(p) for p in ps)
        if ps:
            out.append((i, [names[id(p)] for p in ps]))
    return out


class DeepPrior(nn.Module):
    """Latent ``z`` ``(B, *latent_shape)`` and per-sample copies of the first ``blocks`` blocks.

    Args:
        generator: a frozen :class:`priors.Generator` (shared, not modified).
        z: initial latents ``(B, *latent_shape)``.
        blocks: how many leading blocks may be fine-tuned (the largest stage's ``blocks``).
        c: class labels (``(B,)`` ids or ``(B, n_classes)``) or None; or a
            :class:`priors.class_vector.ClassVector`, optimized jointly (group and state ``"class"``;
            its per-sample probabilities enter the batched forward like the latent).
    """

    def __init__(self, generator, z: torch.Tensor, blocks: int, c=None):
        super().__init__()
        from .base import check_latent

        check_latent(z, generator.latent_shape, "initial latent")
        self.generator, self.c, self.batch = generator, c, z.shape[0]
        self.z = nn.Parameter(z.detach().clone())
        own = dict(generator.named_parameters())
        self.block_names = block_parameter_names(generator, blocks)
        self.names = [n for _, ns in self.block_names for n in ns]
        self.params = nn.ParameterList(
            nn.Parameter(own[n].detach().unsqueeze(0).repeat(self.batch, *([1] * own[n].dim()))) for n in self.names)
        self.touched = set()  # blocks ever unfrozen: only their stacked copies enter the forward

    def unfreeze(self, blocks: int) -> None:
        """Mark the first ``blocks`` blocks as fine-tuned from now on (they render per sample)."""
        self.touched.update(i for i, _ in self.block_names if i < blocks)

    def stacked(self, touched_only: bool = False) -> dict:
        """``{parameter name: (B, *shape)}`` of the fine-tunable (or only the touched) parameters."""
        if not touched_only:
            return dict(zip(self.names, self.params))
        allowed = {n for i, ns in self.block_names if i in self.touched for n in ns}
        return {n: p for n, p in zip(self.names, self.params) if n in allowed}

    def forward(self) -> torch.Tensor:
        G, c = self.generator, resolve_class(self.c)

        def one(params, z, cb):
            return functional_call(G, params, (z.unsqueeze(0), None if cb is None else cb.unsqueeze(0)))[0]

        params = self.stacked(touched_only=True)
        if not params:
            return G(self.z, c)
        return vmap(one, in_dims=(0, 0, None if c is None else 0))(params, self.z, c)

    def groups(self) -> dict:
        out = {"latent": [self.z], **class_group(self.c)}
        by_name = self.stacked()
        for i, names in self.block_names:
            out[f"block{i}"] = [by_name[n] for n in names]
        return out

    def state(self, with_params: bool = True) -> dict:
        """``{"z": (B, ...)}`` (and ``"class"`` ``(B, n_classes)`` with a class vector) plus
        ``{"param:<name>": (B, ...)}`` of the blocks touched so far (the others still equal the
        shared generator's)."""
        out = {"z": self.z.detach(), **class_state(self.c)}
        if with_params:
            out.update({f"param:{n}": p.detach() for n, p in self.stacked(touched_only=True).items()})
        return out

    def penalty(self) -> torch.Tensor:
        return latent_penalty(self.z)

    def generator_for(self, b: int, params: dict = None):
        """Sample ``b``'s fine-tuned generator: a frozen deep copy with its parameters loaded.

        ``params``: ``{name: (B, ...)}`` to use instead of the current ones (e.g. a result's
        ``finetuned["params"]``)."""
        params = params if params is not None else self.stacked()
        return load_finetuned(self.generator, params, b)


def load_finetuned(generator, params: dict, b: int):
    """A frozen copy of ``generator`` with sample ``b``'s rows of ``params`` ``{name: (B, ...)}``."""
    clone = generator.copy_sharing_discriminator()
    own = dict(clone.named_parameters())
    with torch.no_grad():
        for n, p in params.items():
            own[n].copy_(p[b])
    return clone.eval().requires_grad_(False)
