"""The :class:`LinearOperator` base class and operator composition.

A subclass implements only the forward map ``A(x)``, its adjoint ``A_adjoint(y)``, its
per-sample shapes (``in_dims``, ``output_dims``) and ``spec()``; the base class provides
``forward``, ``adjoint``, ``normal``, ``pinv`` (conjugate gradient unless a subclass has a closed
form), ``norm`` (power iteration), ``adjoint_error``, ``degrade`` and composition ``A2 @ A1``.

Example::

    >>> import torch
    >>> from operators import Downsample, Grayscale
    >>> op = Grayscale() @ Downsample(2)          # first downsample, then convert to gray
    >>> x = torch.rand(1, 3, 8, 8)
    >>> op(x).shape
    torch.Size([1, 1, 4, 4])
    >>> op.adjoint(op(x)).shape
    torch.Size([1, 3, 8, 8])
    >>> bool(torch.allclose(op(op.pinv(op(x))), op(x), atol=1e-5))
    True
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ._checks import Dims, check_finite, check_tensor, format_dims, seeded_generator
from ._solvers import cgls, power_iteration

__all__ = ["LinearOperator", "ComposedOperator"]


class LinearOperator(nn.Module):
    """A linear map from images ``(B, *in_dims)`` to observations ``(B, *out_dims)``.

    Shapes are per sample: ``in_dims`` is e.g. ``(3, 64, 64)``, with ``None`` where any size is
    accepted (checked per call). ``input_shape`` is the full ``(C, H, W)`` tuple when every
    entry is fixed, else ``None``. Operator tensors are registered buffers, so ``.to(device)``,
    ``.double()`` and ``state_dict()`` just work; inputs of another floating dtype are computed in
    the input's dtype. ``seed`` is the seed a random operator was drawn with (``None`` otherwise).
    """

    seed: Optional[int] = None
    batch_size: Optional[int] = None  # set when the operator is per-sample (e.g. a batch of masks)

    # ------------------------------------------------------------------ for subclasses
    def A(self, x: torch.Tensor) -> torch.Tensor:
        """The forward map ``(B, *in_dims) -> (B, *out_dims)``; subclasses call ``check_input`` first."""
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """The exact adjoint ``(B, *out_dims) -> (B, *in_dims)`` (shape-checked, not NaN-checked)."""
        raise NotImplementedError

    @property
    def in_dims(self) -> Dims:
        """Per-sample input dims; ``None`` entries accept any size. Default: any ``(C, H, W)``."""
        return (None, None, None)

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        """Per-sample output dims for the given input dims (``None`` propagates). Default: same."""
        return tuple(in_dims)

    def spec(self) -> dict:
        """A JSON-able description (numpy arrays allowed) that :func:`operators.from_spec` rebuilds."""
        raise NotImplementedError(f"{type(self).__name__} does not implement spec()")

    def _pinv(self, y: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
        """Pseudo-inverse of a validated observation; override where a closed form exists."""
        return cgls(self.A, self.A_adjoint, y, tol=tol, max_iter=max_iter)

    # ------------------------------------------------------------------ shapes and checks
    @property
    def out_dims(self) -> Dims:
        return self.output_dims(self.in_dims)

    @property
    def input_shape(self) -> Optional[Tuple[int, ...]]:
        """``(C, H, W)`` when fixed, ``None`` when some size is free (then validated per call)."""
        dims = self.in_dims
        return None if any(d is None for d in dims) else tuple(dims)

    @property
    def output_shape(self) -> Optional[Tuple[int, ...]]:
        dims = self.out_dims
        return None if any(d is None for d in dims) else tuple(dims)

    def check_input(self, x: torch.Tensor) -> None:
        """``TypeError`` unless ``x`` is a float tensor; ``ValueError`` unless it is ``(B, *in_dims)``."""
        check_tensor(x, "input image", self.in_dims, type(self).__name__)
        self._check_batch(x, "input image")

    def check_observation(self, y: torch.Tensor, finite: bool = True) -> None:
        """Validate an observation: float dtype, shape ``(B, *out_dims)``, and (``finite``) no NaN/inf.

        Solvers call this once on the measured ``y`` before iterating.
        """
        check_tensor(y, "observation", self.out_dims, type(self).__name__)
        self._check_batch(y, "observation")
        if finite:
            check_finite(y, "observation", type(self).__name__)

    def _check_batch(self, t: torch.Tensor, what: str) -> None:
        if self.batch_size is not None and t.shape[0] != self.batch_size:
            raise ValueError(f"{type(self).__name__}: {what} must have batch size {self.batch_size} "
                             f"(one per per-sample mask), got {t.shape[0]}")

    # ------------------------------------------------------------------ provided maps
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`A`."""
        return self.A(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y`` after :meth:`check_observation` (so NaN observations raise ``ValueError``)."""
        self.check_observation(y)
        return self.A_adjoint(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^T A x``, shape ``(B, *in_dims) -> (B, *in_dims)``."""
        return self.A_adjoint(self.A(x))

    def pinv(self, y: torch.Tensor, tol: float = 1e-6, max_iter: int = 200) -> torch.Tensor:
        """The pseudo-inverse ``A^+ y`` (minimum-norm least-squares solution), ``(B, *out_dims) -> (B, *in_dims)``.

        Closed form where one exists (``Mask``, ``Grayscale``, box ``Downsample``), else CGLS
        with relative tolerance ``tol`` and at most ``max_iter`` iterations. Not differentiable.
        """
        self.check_observation(y)
        return self._pinv(y, tol, max_iter)

    def degrade(self, x: torch.Tensor, noise: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """Simulate an observation: ``noise(A(x))``, or ``A(x)`` when ``noise`` is None."""
        y = self.A(x)
        return y if noise is None else noise(y)

    # ------------------------------------------------------------------ diagnostics
    def _reference(self) -> torch.Tensor:
        """An empty tensor with the dtype and device of this operator's floating buffers."""
        for buf in self.buffers():
            if buf.is_floating_point():
                return buf.new_empty(0)
        return torch.empty(0)

    def _random_input(self, shape: Optional[Sequence[int]], seed: int, what: str) -> torch.Tensor:
        if shape is None and len(self.in_dims) == 3 and self.in_dims[0] is None and None not in self.in_dims[1:]:
            shape = (1,) + tuple(self.in_dims[1:])  # free channels are treated alike (e.g. a 1-channel mask)
        shape = tuple(shape) if shape is not None else self.input_shape
        if shape is None:
            raise ValueError(f"{type(self).__name__} accepts inputs {format_dims(self.in_dims)} of any "
                             f"size; pass input_shape=(C, H, W) to {what}")
        gen, _ = seeded_generator(seed)
        batch = self.batch_size or 1
        ref = self._reference()
        return torch.randn((batch,) + shape, generator=gen, dtype=torch.float64).to(ref)

    def norm(self, input_shape: Optional[Sequence[int]] = None, *, max_iter: int = 500,
             tol: float = 1e-9, seed: int = 0) -> float:
        """Spectral norm ``||A||_2`` by power iteration on ``A^T A`` (seeded start vector).

        ``input_shape`` (``(C, H, W)``) is needed only when the operator accepts any size.
        """
        v = self._random_input(input_shape, seed, "norm()")
        return math.sqrt(max(power_iteration(self.normal, v, max_iter=max_iter, tol=tol), 0.0))

    def adjoint_error(self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None,
                      *, input_shape: Optional[Sequence[int]] = None, seed: int = 0) -> float:
        """Relative adjoint mismatch ``|<Ax, y> - <x, A^T y>| / max(|<Ax, y>|, |<x, A^T y>|)``.

        Random (seeded) ``x`` (of ``input_shape``, needed when the operator accepts any size) and
        ``y`` are drawn when not given. Near machine epsilon for an exact adjoint.
        """
        if x is None:
            x = self._random_input(input_shape, seed, "adjoint_error()")
        ax = self.A(x)
        if y is None:
            gen, _ = seeded_generator(seed + 1)
            y = torch.randn(ax.shape, generator=gen, dtype=torch.float64).to(ax)
        lhs = float((ax * y).sum())
        rhs = float((x * self.A_adjoint(y)).sum())
        scale = max(abs(lhs), abs(rhs))
        return 0.0 if scale == 0.0 else abs(lhs - rhs) / scale

    # ------------------------------------------------------------------ composition
    def __matmul__(self, other: "LinearOperator") -> "ComposedOperator":
        """``A2 @ A1`` applies ``A1`` first; its adjoint is ``A1^T A2^T``."""
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return ComposedOperator(_flatten(other) + _flatten(self))


def _flatten(op: LinearOperator) -> List[LinearOperator]:
    return list(op.ops) if isinstance(op, ComposedOperator) else [op]


def _merge_dims(produced: Dims, wanted: Dims, left: LinearOperator, right: LinearOperator) -> Dims:
    """Combine what ``left`` outputs with what ``right`` accepts; ``ValueError`` when they clash."""
    clash = len(produced) != len(wanted) or any(
        p is not None and w is not None and p != w for p, w in zip(produced, wanted))
    if clash:
        raise ValueError(f"cannot compose: {type(left).__name__} outputs {format_dims(produced)} but "
                         f"{type(right).__name__} expects {format_dims(wanted)}")
    return tuple(w if w is not None else p for p, w in zip(produced, wanted))


class ComposedOperator(LinearOperator):
    """``ops[-1] ∘ ... ∘ ops[0]``: applies ``ops[0]`` first. Built by ``A2 @ A1``.

    Shapes: input ``(B, *ops[0].in_dims)``, output ``(B, *ops[-1].out_dims)``. The adjoint
    applies the adjoints in reverse order. ``pinv`` uses CGLS.
    """

    def __init__(self, ops: Sequence[LinearOperator]):
        super().__init__()
        if len(ops) < 1 or not all(isinstance(op, LinearOperator) for op in ops):
            raise TypeError("ComposedOperator needs a non-empty sequence of LinearOperator")
        self.ops = nn.ModuleList(ops)
        self._out = self._propagate()
        sizes = {op.batch_size for op in ops if op.batch_size is not None}
        if len(sizes) > 1:
            raise ValueError(f"cannot compose per-sample operators with batch sizes {sorted(sizes)}")
        self.batch_size = sizes.pop() if sizes else None

    def _propagate(self) -> Dims:
        dims = self.ops[0].out_dims
        for left, right in zip(self.ops[:-1], self.ops[1:]):
            dims = right.output_dims(_merge_dims(dims, right.in_dims, left, right))
        return dims

    @property
    def in_dims(self) -> Dims:
        return self.ops[0].in_dims

    def output_dims(self, in_dims: Sequence[Optional[int]]) -> Dims:
        dims = tuple(in_dims)
        for op in self.ops:
            dims = op.output_dims(dims)
        return tuple(k if k is not None else d for k, d in zip(dims, self._out))

    @property
    def out_dims(self) -> Dims:
        return self._out

    def A(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op.A(x)
        return x

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.ops):
            y = op.A_adjoint(y)
        return y

    def spec(self) -> dict:
        return {"type": "Composed", "ops": [op.spec() for op in self.ops]}
