"""Restoration by GAN inversion: solvers, losses, metrics, image I/O, command line, batch runner."""
from ._version import __version__
from . import metrics
from .options import Stage
from .solve import Result, StepState, solve
from .sample import Samples, sample

__all__ = ["__version__", "solve", "sample", "Samples", "Result", "StepState", "Stage", "metrics"]
