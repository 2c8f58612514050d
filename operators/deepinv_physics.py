"""A deepinv ``LinearPhysics`` as a ganrestore operator (deepinv itself is optional: duck-typed)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .matrix_free import CallableOperator

__all__ = ["from_deepinv", "DeepinvOperator"]


class DeepinvOperator(CallableOperator):
    """:class:`CallableOperator` over a deepinv physics held as the submodule ``physics``.

    ``op.to(...)`` / ``op.double()`` convert the physics' tensors and also its recorded ``dtype``
    attribute, which some deepinv physics cast their inputs to (``CompressedSensing.A_adjoint``).
    """

    def __init__(self, physics, in_shape, out_shape, *, dtype: torch.dtype, device):
        super().__init__(physics.A, physics.A_adjoint, in_shape, out_shape, name="from_deepinv",
                         dtype=dtype, device=device)
        self.physics = physics

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        if isinstance(getattr(self.physics, "dtype", None), torch.dtype):
            self.physics.dtype = self.probe.dtype
        return out


def _reference(physics) -> torch.Tensor:
    """An empty tensor with the dtype and device of the physics' first floating tensor (else float32 CPU)."""
    tensors = list(physics.parameters()) + list(physics.buffers()) if isinstance(physics, torch.nn.Module) else []
    for t in tensors:
        if t.is_floating_point():
            return t.new_empty(0)
    return torch.empty(0)


def from_deepinv(physics, in_shape: Optional[Sequence[int]] = None, *, seed: int = 0) -> DeepinvOperator:
    """Wrap a deepinv ``LinearPhysics`` (its noiseless ``A`` and ``A_adjoint``) as a :class:`~operators.LinearOperator`.

    Args:
        physics: e.g. ``deepinv.physics.CompressedSensing(m=100, img_size=(1, 28, 28))``. Its
            noise model is not part of the operator (``physics(x)`` = noise(``A(x)``) simulates data).
        in_shape: the per-sample image shape ``(C, H, W)``; default ``physics.img_size``
            (``ValueError`` when the physics does not record one).
        seed: of the construction-time adjoint check (warns above 1e-4 relative error).

    Returns a :class:`DeepinvOperator` ``(B, *in_shape) -> (B, *out_shape)``, the output shape read
    from one call of ``A``; the physics is its submodule ``physics``, so ``op.to(device)`` and
    ``op.double()`` move and convert it. ``pinv`` by CGLS; no ``spec()``.

    Example (needs deepinv)::

        >>> import torch, deepinv                                          # doctest: +SKIP
        >>> from operators import from_deepinv                              # doctest: +SKIP
        >>> physics = deepinv.physics.CompressedSensing(m=20, img_size=(1, 8, 8),
        ...                                             rng=torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> op = from_deepinv(physics)                                      # doctest: +SKIP
        >>> op(torch.rand(2, 1, 8, 8)).shape                                # doctest: +SKIP
        torch.Size([2, 20])
    """
    if not (callable(getattr(physics, "A", None)) and callable(getattr(physics, "A_adjoint", None))):
        raise TypeError(f"from_deepinv needs a deepinv LinearPhysics (with A and A_adjoint), got "
                        f"{type(physics).__name__}; a nonlinear Physics has no adjoint")
    if in_shape is None:
        in_shape = getattr(physics, "img_size", None)
        if in_shape is None:
            raise ValueError(f"from_deepinv: {type(physics).__name__} does not record its image size "
                             f"(img_size is None); pass in_shape=(C, H, W)")
    ref = _reference(physics)
    in_shape = tuple(in_shape)
    with torch.no_grad():
        probe = physics.A(torch.zeros((1,) + in_shape, dtype=ref.dtype, device=ref.device))
    op = DeepinvOperator(physics, in_shape, tuple(probe.shape[1:]), dtype=ref.dtype, device=ref.device)
    op.check_adjoint(seed=seed)
    return op
