"""Rebuild operators and noise models from ``spec()`` dictionaries.

A spec is a JSON-able dict (numpy arrays allowed, e.g. a mask) with a ``"type"`` key and the
constructor arguments (or, for a type with a ``from_spec`` classmethod such as ``Matrix``, what that
reads); random operators store their seed, so the rebuilt operator is identical.

Example::

    >>> from operators import CompressedSensing, Downsample, from_spec
    >>> op = CompressedSensing(50, (3, 8, 8), kind="srht") @ Downsample(2)
    >>> from_spec(op.spec()).spec() == op.spec()
    True
"""
from __future__ import annotations

from typing import Any, Dict, Union

from .base import ComposedOperator, LinearOperator
from .color import Grayscale
from .compressed_sensing import CompressedSensing
from .fourier import PartialFourier
from .mask import Mask
from .matrix import Matrix
from .noise import GaussianNoise, PoissonNoise
from .resample import Downsample
from .single_pixel import SinglePixel

__all__ = ["from_spec", "SPEC_TYPES"]

SPEC_TYPES = {cls.__name__: cls for cls in (Mask, Downsample, Grayscale, CompressedSensing, Matrix,
                                            PartialFourier, SinglePixel, GaussianNoise, PoissonNoise)}


def from_spec(spec: Dict[str, Any]) -> Union[LinearOperator, GaussianNoise, PoissonNoise]:
    """Build the operator (or noise model) that ``spec`` describes; ``ValueError`` for an unknown type."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"an operator spec is a dict with a 'type' key, got {spec!r:.200}")
    kind = spec["type"]
    args = {k: v for k, v in spec.items() if k != "type"}
    if kind == "Composed":
        return ComposedOperator([from_spec(s) for s in args["ops"]])
    if kind not in SPEC_TYPES:
        raise ValueError(f"unknown operator type {kind!r}; expected one of {sorted(SPEC_TYPES) + ['Composed']}")
    cls = SPEC_TYPES[kind]
    return cls.from_spec(args) if hasattr(cls, "from_spec") else cls(**args)
