"""GAN priors: frozen pretrained generators with split points, a registry, and the
parametrizations that inversion optimizes."""
from .base import Discriminator, Generator, WrappedGenerator, freeze, wrap

__all__ = ["Generator", "Discriminator", "WrappedGenerator", "wrap", "freeze"]

try:  # the registry lands with the families; keep the interface importable meanwhile
    from .registry import available, fetch, get_entry, load, models_table  # noqa: F401
    __all__ += ["load", "available", "fetch", "get_entry", "models_table"]
except ImportError:  # pragma: no cover
    pass
