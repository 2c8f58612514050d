"""Restoration by GAN inversion: solvers, losses, metrics, image I/O, command line, batch runner."""
from ._version import __version__
from . import metrics
from .options import Stage
from .solve import Result, StepState, solve

__all__ = ["__version__", "solve", "Result", "StepState", "Stage", "metrics"]
