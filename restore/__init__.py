"""Restoration by GAN inversion: solvers, losses, metrics, image I/O, command line, batch runner."""
from ._version import __version__
from . import metrics
from .options import Stage
from .solve import Result, StepState, solve
from .fullres import PhotoResult, Region, restore_photo
from .sample import Samples, sample
from .deepinv_bridge import GANReconstructor, as_deepinv

__all__ = ["__version__", "solve", "sample", "Samples", "Result", "StepState", "Stage", "metrics", "restore_photo",
           "PhotoResult", "Region", "as_deepinv", "GANReconstructor"]
