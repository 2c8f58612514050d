"""ganrestore as a deepinv reconstructor: ``model(y, physics)`` inverts a GAN prior with ``restore.solve``."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from operators.deepinv_physics import from_deepinv

from .solve import Result, solve

__all__ = ["as_deepinv", "GANReconstructor"]


class GANReconstructor(nn.Module):
    """A deepinv-style reconstructor: ``x_hat = model(y, physics)``, ``(B, *y_dims) -> (B, C, H, W)`` in ``[0, 1]``.

    Each call wraps ``physics`` with :func:`operators.from_deepinv` (the image shape is that of
    ``physics.A_adjoint(y)``) and runs :func:`restore.solve` with the prior, ``method`` and the
    keyword arguments given at construction; keyword arguments of a call override them for that
    call. Gradients are enabled inside the call, so it also works under deepinv's
    ``torch.no_grad()`` evaluation loops. ``last_result`` holds the last :class:`restore.Result`.
    """

    def __init__(self, prior, method: str = "mgan", **solve_kwargs):
        super().__init__()
        if not isinstance(method, str):
            raise TypeError(f"as_deepinv method must be a string such as 'latent', 'mgan' or 'dgp', got {method!r}")
        self.prior, self.method, self.solve_kwargs = prior, method, dict(solve_kwargs)
        self.last_result: Optional[Result] = None

    def forward(self, y: torch.Tensor, physics, **overrides) -> torch.Tensor:
        with torch.no_grad():
            in_shape = tuple(physics.A_adjoint(y[:1]).shape[1:])
        operator = from_deepinv(physics, in_shape)
        with torch.enable_grad():
            self.last_result = solve(y, operator, self.prior, method=self.method,
                                     **{**self.solve_kwargs, **overrides})
        return self.last_result.image

    def extra_repr(self) -> str:
        return f"method={self.method!r}, solve_kwargs={self.solve_kwargs}"


def as_deepinv(prior, method: str = "mgan", **solve_kwargs) -> GANReconstructor:
    """A :class:`GANReconstructor` (``torch.nn.Module``) called as deepinv's models are, ``model(y, physics)``.

    Args:
        prior: a :class:`priors.Generator` whose images have the shape the physics takes.
        method: ``"latent"``, ``"mgan"`` or ``"dgp"`` (as :func:`restore.solve`).
        **solve_kwargs: any other argument of :func:`restore.solve` (``steps``, ``seed``,
            ``preset``, ``progress``, method options...).

    Example (needs deepinv)::

        >>> import deepinv, priors, restore                                       # doctest: +SKIP
        >>> G = priors.load("mlp-mnist28")                                         # doctest: +SKIP
        >>> physics = deepinv.physics.CompressedSensing(m=200, img_size=(1, 28, 28))  # doctest: +SKIP
        >>> model = restore.as_deepinv(G, method="latent", seed=0, progress=False)  # doctest: +SKIP
        >>> x_hat = model(physics(x), physics)                                      # doctest: +SKIP
    """
    return GANReconstructor(prior, method, **solve_kwargs)
