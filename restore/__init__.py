"""Restoration by GAN inversion: solvers, losses, metrics, image I/O, command line, batch runner."""
from ._version import __version__

__all__ = ["__version__"]
