"""Degradation operators as exact linear maps (forward, adjoint, pseudo-inverse).

``from operators import LinearOperator, Mask, Downsample, Grayscale, CompressedSensing,
Matrix, from_callable, PartialFourier, SinglePixel, from_deepinv, GaussianNoise, PoissonNoise, masks,
from_spec``.

Every operator maps float images ``(B, C, H, W)`` to observations, has an exact adjoint, a
pseudo-inverse, a power-iteration norm and composes with ``@`` (``A2 @ A1`` applies ``A1`` first).

Example::

    >>> import torch
    >>> from operators import Downsample, GaussianNoise
    >>> x = torch.rand(1, 3, 64, 64)
    >>> op = Downsample(4)                                  # "SR x4 bicubic"
    >>> y = op.degrade(x, GaussianNoise(0.01, seed=0))      # (1, 3, 16, 16) noisy observation
    >>> op.pinv(y).shape
    torch.Size([1, 3, 64, 64])
"""
from . import masks
from ._checks import draw_seed
from .base import ComposedOperator, LinearOperator
from .color import Grayscale
from .compressed_sensing import CompressedSensing
from .deepinv_physics import from_deepinv
from .fourier import PartialFourier
from .mask import Mask
from .matrix import Matrix
from .matrix_free import CallableOperator, from_callable
from .noise import GaussianNoise, PoissonNoise
from .resample import Downsample
from .single_pixel import SinglePixel
from .spec import from_spec
from .weighted import Weighted, poisson_whitening

__all__ = ["LinearOperator", "ComposedOperator", "Mask", "Downsample", "Grayscale", "CompressedSensing",
           "Matrix", "from_callable", "CallableOperator", "PartialFourier", "SinglePixel", "from_deepinv",
           "GaussianNoise", "PoissonNoise", "masks", "from_spec", "draw_seed", "Weighted", "poisson_whitening"]
