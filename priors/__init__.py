"""GAN priors: frozen pretrained generators with split points, a registry, and the
parametrizations that inversion optimizes."""
from .base import Discriminator, Generator, WrappedGenerator, freeze, wrap
from .registry import available, fetch, get_entry, load, models_table

__all__ = ["Generator", "Discriminator", "WrappedGenerator", "wrap", "freeze",
           "load", "available", "fetch", "get_entry", "models_table"]
