"""Class-conditional DCGAN (cDCGAN): the latent and a class vector are concatenated into the
``1x1`` input of a DCGAN-tutorial stack.

The generator is ``G(z, c)``: ``z (B, nz, 1, 1)`` and ``c`` either integer class ids ``(B,)`` or
class vectors ``(B, n_classes)`` (one-hot, or any mixture); the network sees
``cat([z, onehot(c)], 1)``. The first transposed convolution has ``nz + n_classes`` input
channels, so a checkpoint fixes their sum: pass ``nz`` or ``n_classes`` (``nz=100`` by default).
Layers without weights (ReLU, Dropout, Tanh) are inferred; dropout is inactive in eval mode.

Example::

    >>> import torch
    >>> from priors import cdcgan
    >>> G = cdcgan.tiny()
    >>> z = G.sample_latents(3, seed=0)
    >>> G(z, torch.tensor([0, 1, 2])).shape, G.n_classes
    (torch.Size([3, 3, 16, 16]), 4)
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from ._weights import build_empty, load_strict, seeded_init_, select_state_dict, torch_load
from .base import freeze
from .dcgan import DCGANGenerator, parse_stages, resolve_layout, stage_shapes, stages_state_dict

__all__ = ["CDCGANGenerator", "from_checkpoint", "tiny", "class_vectors", "ENTRIES"]

EYE_CLASSES = ("amber", "blue", "brown", "gray", "grayscale", "green", "hazel", "red")

ENTRIES = [dict(
    name="cdcgan-omniart-eyes128",
    family="cdcgan",
    resolution=128,
    licence="MIT",
    description="class-conditional DCGAN of painted eyes from the OmniArt eye dataset (128x128 RGB, "
                "nz=100, 8 eye colours: " + ", ".join(EYE_CLASSES) + "); PyPI omniart-eye-generator 0.1",
    files=[dict(filename="omniart-eyes128-generator.pth", pypi="omniart-eye-generator==0.1",
                member="omniart_eye_generator/generator_model_state.pth",
                sha256="dd486abbd738bfe3d28ddd46987bec11e3842ddcc8c28ccc5251b52c6ecf4da0",
                size=51691195)],
    kwargs=dict(nz=100, class_names=EYE_CLASSES),
)]


def _is_batched(t: torch.Tensor) -> bool:
    """True inside ``torch.func`` transforms (values cannot be inspected there)."""
    check = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return bool(check(t)) if check is not None else False


def class_vectors(c, n_classes: int, batch: Optional[int], dtype, device) -> torch.Tensor:
    """``c`` as ``(B, n_classes)`` float vectors: int ids ``(B,)`` become one-hot, float vectors
    ``(B, n_classes)`` pass through. Raises ``ValueError`` on other shapes or ids out of range.
    Compatible with ``torch.func.vmap`` (no data-dependent control flow on batched inputs)."""
    if not isinstance(c, torch.Tensor):
        c = torch.as_tensor(c, device=device)
    if c.dim() == 0:
        c = c.reshape(1)
    if batch is not None and c.shape[0] != batch:
        raise ValueError(f"c must hold one class per sample: expected batch {batch}, got shape {tuple(c.shape)}")
    if not c.is_floating_point():
        if c.dim() != 1:
            raise ValueError(f"integer class ids must have shape (B,), got {tuple(c.shape)}")
        if not _is_batched(c) and c.numel() and (int(c.min()) < 0 or int(c.max()) >= n_classes):
            raise ValueError(f"class ids must lie in 0..{n_classes - 1}, got {c.tolist()}")
        return (c.to(device)[:, None] == torch.arange(n_classes, device=device)).to(dtype)
    if c.dim() != 2 or c.shape[1] != n_classes:
        raise ValueError(f"class vectors must have shape (B, {n_classes}), got {tuple(c.shape)}")
    return c.to(device=device, dtype=dtype)


class CDCGANGenerator(DCGANGenerator):
    """``G(z, c)``: ``z (B, nz, 1, 1)``, ``c`` ids ``(B,)`` or vectors ``(B, n_classes)`` ->
    ``(B, nc, R, R)`` in ``[0, 1]``. Only the stem sees ``c``; ``features(z, k, c)`` has the same
    shapes as the unconditional DCGAN's."""

    def __init__(self, shapes: Sequence[Tuple[int, int, bool, bool]], n_classes: int,
                 class_names: Optional[Sequence[str]] = None) -> None:
        super().__init__(shapes)
        if not 0 < n_classes < shapes[0][0]:
            raise ValueError(f"n_classes must be in 1..{shapes[0][0] - 1} (first layer has "
                             f"{shapes[0][0]} input channels = nz + n_classes), got {n_classes}")
        self.n_classes = int(n_classes)
        self.nz = shapes[0][0] - self.n_classes
        self.latent_shape = (self.nz, 1, 1)
        if class_names is not None and len(class_names) != n_classes:
            raise ValueError(f"class_names must have {n_classes} names, got {len(class_names)}")
        self.class_names = tuple(class_names) if class_names is not None else None

    def context(self, z, c=None):
        if c is None:
            return None
        ref = z if z is not None else next(self.parameters())
        batch = z.shape[0] if z is not None else None
        return class_vectors(c, self.n_classes, batch, ref.dtype, ref.device)

    def stem(self, z, ctx):
        return torch.cat([z.flatten(1), ctx], 1)[:, :, None, None]


def from_checkpoint(path, device=None, nz: Optional[int] = None, n_classes: Optional[int] = None,
                    class_names: Optional[Sequence[str]] = None, key: Optional[str] = None,
                    prefix: str = "main.") -> CDCGANGenerator:
    """Load a cDCGAN state dict (frozen). The first layer's input channels are ``nz + n_classes``:
    give either (``n_classes = len(class_names)``, else ``nz = 100``, when neither is given).

    Args:
        path: a state dict of the ``main`` ``nn.Sequential`` (or a dict holding it under ``key``).
        class_names: optional names of the classes, in id order (kept as ``G.class_names``).
    """
    what = f"cDCGAN checkpoint {path}"
    raw = torch_load(path)
    key, prefix = resolve_layout(raw, key, prefix)
    stages = parse_stages(select_state_dict(raw, key, prefix, what), what)
    shapes = stage_shapes(stages, what)
    total = shapes[0][0]
    if n_classes is None:
        n_classes = len(class_names) if class_names is not None and nz is None else total - (nz or 100)
    if nz is not None and nz + n_classes != total:
        raise ValueError(f"{what}: nz + n_classes must equal the first layer's {total} input channels, "
                         f"got {nz} + {n_classes}")
    G = build_empty(lambda: CDCGANGenerator(shapes, n_classes, class_names))
    load_strict(G.blocks, stages_state_dict(stages), what)
    freeze(G)
    return G.to(device) if device is not None else G


def tiny(seed: int = 0, nz: int = 8, n_classes: int = 4, ngf: int = 4, channels: int = 3) -> CDCGANGenerator:
    """A random-weight cDCGAN for tests: ``z (B, 8, 1, 1)``, 4 classes -> ``(B, 3, 16, 16)``."""
    shapes = [(nz + n_classes, 2 * ngf, False, True), (2 * ngf, ngf, False, True), (ngf, channels, False, False)]
    G = seeded_init_(build_empty(lambda: CDCGANGenerator(shapes, n_classes)), seed)
    return freeze(G)
