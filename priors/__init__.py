"""GAN priors: frozen pretrained generators with split points, a registry, and the
parametrizations that inversion optimizes."""
from .base import Discriminator, Generator, WrappedGenerator, freeze, wrap

__all__ = ["Generator", "Discriminator", "WrappedGenerator", "wrap", "freeze"]

try:  # the registry lands with the families; keep the interface importable meanwhile
    from .registry import available, load  # noqa: F401
    __all__ += ["load", "available"]
except ImportError:  # pragma: no cover
    pass
