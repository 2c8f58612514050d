"""Matrix-free operators: a user's forward and adjoint functions, with the adjoint checked once."""
from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import torch

from ._checks import Dims, check_sizes, format_dims, seeded_generator
from .base import LinearOperator

__all__ = ["CallableOperator", "from_callable", "ADJOINT_WARN_ABOVE"]

ADJOINT_WARN_ABOVE = 1e-4  # relative adjoint error above which construction warns

Fn = Callable[[torch.Tensor], torch.Tensor]


class CallableOperator(LinearOperator):
    """A linear operator given by two functions, ``(B, *in_shape) -> (B, *out_shape)`` and back.

    Built by :func:`from_callable` (which checks the adjoint). Inputs and outputs are shape-checked
    on every call (``ValueError`` naming the function and the shapes). The functions are called
    with tensors of the caller's dtype and device: they must handle those (cast captured
    tensors with ``.to(x)``); functions that are ``nn.Module`` s move with ``.to()``.
    ``spec()`` raises ``NotImplementedError``: Python functions cannot be serialized.
    An empty buffer records the dtype and device the functions work in (``dtype``, ``device``;
    ``op.double()`` / ``op.to(device)`` change it): the random probes of ``norm()`` and
    ``adjoint_error()`` are drawn there.
    """

    def __init__(self, A: Fn, A_adjoint: Fn, in_shape: Sequence[int], out_shape: Sequence[int],
                 name: str = "from_callable", *, dtype: torch.dtype = torch.float32, device="cpu"):
        super().__init__()
        self.register_buffer("probe", torch.empty(0, dtype=dtype, device=device))
        for what, fn in (("A", A), ("A_adjoint", A_adjoint)):
            if not callable(fn):
                raise TypeError(f"{name}: {what} must be callable (tensor -> tensor), got {type(fn).__name__}")
        self._fn, self._fn_adjoint, self.name = A, A_adjoint, name
        self._in = check_sizes(in_shape, f"{name}: in_shape")
        self._out = check_sizes(out_shape, f"{name}: out_shape", "(m,)")
        self.adjoint_check_error: Optional[float] = None  # set by from_callable's check

    @property
    def in_dims(self) -> Dims:
        return self._in

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        return self._out

    def A(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self._checked(self._fn(x), "A", x.shape[0], self._out)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self.check_observation(y, finite=False)
        return self._checked(self._fn_adjoint(y), "A_adjoint", y.shape[0], self._in)

    def _checked(self, out, what: str, batch: int, dims: Dims) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (batch,) + dims:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"{self.name}: {what} must return {format_dims(dims).replace('B', str(batch), 1)}, "
                             f"got {got}")
        return out

    def spec(self) -> dict:
        raise NotImplementedError(
            f"{self.name} operators wrap Python functions and cannot be serialized (no spec()); rebuild "
            f"it in your script, or use a serializable operator such as operators.Matrix")

    def check_adjoint(self, seed: int = 0) -> float:
        """Measure the relative adjoint error on seeded random ``x`` and ``y`` (batch 2) of the probe
        dtype and device; warn (``UserWarning``) when it exceeds 1e-4. Returns the error."""
        gen, seed = seeded_generator(seed)
        dtype, device = self.probe.dtype, self.probe.device
        x = torch.randn((2,) + self._in, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
        y = torch.randn((2,) + self._out, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
        try:
            with torch.no_grad():
                err = self.adjoint_error(x, y)
        except Exception as exc:  # noqa: BLE001 - the user's functions; re-raised with the setting
            raise ValueError(f"{self.name}: checking the adjoint on seeded random tensors x {tuple(x.shape)}, y "
                             f"{tuple(y.shape)} ({str(dtype).replace('torch.', '')} on {device}) failed: "
                             f"{type(exc).__name__}: {exc}; check in_shape, out_shape, dtype and device") from exc
        self.adjoint_check_error = err
        if not err <= ADJOINT_WARN_ABOVE:
            warnings.warn(f"{self.name}: A_adjoint is not the adjoint of A: relative error {err:.2e} > "
                          f"{ADJOINT_WARN_ABOVE:.0e} (|<Ax,y> - <x,A_adjoint y>| / max of the two) on "
                          f"seeded random {str(dtype).replace('torch.', '')} vectors (seed={seed}); gradients, "
                          f"pinv and norm assume an exact adjoint", UserWarning, stacklevel=3)
        return err

    def extra_repr(self) -> str:
        return f"in_shape={self._in}, out_shape={self._out}, adjoint_check_error={self.adjoint_check_error}"


def from_callable(A: Fn, A_adjoint: Fn, in_shape: Sequence[int], out_shape: Sequence[int], *,
                  dtype: torch.dtype = torch.float32, device="cpu", seed: int = 0) -> CallableOperator:
    """A :class:`~operators.LinearOperator` from a forward function and its adjoint (matrix-free).

    Args:
        A: ``(B, *in_shape) -> (B, *out_shape)``, linear; ``A_adjoint``: ``(B, *out_shape) -> (B, *in_shape)``.
            Both must accept batches and tensors of the caller's dtype and device.
        in_shape, out_shape: per-sample shapes, e.g. ``(1, 28, 28)`` and ``(300,)``.
        dtype, device: what the functions work in: the random vectors of the construction-time
            adjoint check (and of ``norm()``) are drawn there.
        seed: of those vectors. The check warns (``UserWarning``) when the relative error
            exceeds 1e-4; ``op.adjoint_check_error`` records it.

    Returns a :class:`CallableOperator`: ``pinv`` by CGLS and ``norm`` by power iteration, from
    the two functions; no ``spec()``.

    Example::

        >>> import torch
        >>> from operators import from_callable
        >>> W = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
        >>> op = from_callable(lambda x: x.flatten(1) @ W.to(x).T,
        ...                    lambda y: (y @ W.to(y)).view(-1, 1, 4, 4), (1, 4, 4), (5,))
        >>> op(torch.rand(3, 1, 4, 4)).shape, op.adjoint_check_error < 1e-6
        (torch.Size([3, 5]), True)
    """
    op = CallableOperator(A, A_adjoint, in_shape, out_shape, dtype=dtype, device=device)
    op.check_adjoint(seed=seed)
    return op
