"""The generator interface every GAN prior implements.

A :class:`Generator` wraps a pretrained network *frozen* (its own copy, ``.eval()``,
``requires_grad_(False)``) and exposes what inversion needs:

* ``G(z, c=None) -> (B, C, H, W)`` images in ``[0, 1]`` whatever the network's native range;
* ``sample_latents(n, seed=None, device=None)`` from the model's own prior;
* split points ``features(z, k)`` / ``from_features(h, k)`` over ``blocks`` for multi-code
  (mGANprior) and deep generative prior (DGP) inversion;
* ``finetunable_copy()`` for per-image fine-tuning;
* an optional ``discriminator`` exposing ``features(x)`` for the DGP feature loss.

A family implements four small hooks; the base class composes them:

* ``context(z, c)``: per-sample conditioning the blocks need (``None`` for a plain DCGAN; the
  ``w`` vectors of StyleGAN2; class embedding and latent chunks of BigGAN);
* ``stem(z, ctx)``: the tensor fed to ``blocks[0]`` (a reshape of ``z``, a learned constant...);
* ``run_block(i, h, ctx)``: block ``i`` applied to ``h`` (default ``self.blocks[i](h)``);
* ``output(h, ctx)``: the native-range image from the last block's output (default identity).

Example::

    >>> import torch
    >>> from torch import nn
    >>> import priors
    >>> net = nn.Sequential(nn.Linear(8, 48), nn.Tanh(), nn.Unflatten(1, (3, 4, 4)))
    >>> G = priors.wrap(net, latent_shape=(8,), output_range=(-1, 1))
    >>> G(G.sample_latents(2, seed=0)).shape
    torch.Size([2, 3, 4, 4])
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ["Generator", "Discriminator", "WrappedGenerator", "wrap", "freeze", "check_latent"]


def freeze(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode with gradients off, in place, and return it."""
    module.eval()
    module.requires_grad_(False)
    return module


def _seeded_generator(seed: Optional[int]) -> torch.Generator:
    """A private ``torch.Generator`` (never the global RNG); a fresh seed when ``seed`` is None."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def check_latent(z: torch.Tensor, latent_shape: Sequence[int], what: str = "latent") -> None:
    """Raise ``ValueError`` unless ``z`` is a float tensor of shape ``(B, *latent_shape)``."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape (B, {', '.join(map(str, latent_shape))}), got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got dtype {z.dtype}")
    if tuple(z.shape[1:]) != tuple(latent_shape) or z.dim() != len(latent_shape) + 1:
        raise ValueError(
            f"{what} must have shape (B, {', '.join(map(str, latent_shape))}), got {tuple(z.shape)}")


class Discriminator(nn.Module):
    """A frozen discriminator taking images in ``[0, 1]``.

    Subclasses implement ``features(x, c=None) -> list[Tensor]`` (intermediate activations, for
    the DGP feature loss) and ``forward(x, c=None) -> (B,)`` scores (logits or probabilities, as
    the checkpoint defines them). ``input_range`` is the network's native pixel range; subclasses
    call :meth:`to_native` on their input first.
    """

    input_range: Tuple[float, float] = (-1.0, 1.0)

    def to_native(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.input_range
        return x * (hi - lo) + lo

    def features(self, x: torch.Tensor, c=None) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def finetunable_copy(self) -> "Discriminator":
        return copy.deepcopy(self)


class Generator(nn.Module):
    """A frozen pretrained generator seen as ``stem -> blocks[0] -> ... -> blocks[-1] -> output``.

    Attributes:
        latent_shape: shape of one latent code, e.g. ``(100, 1, 1)`` or ``(64,)``.
        resolution: output height and width in pixels.
        channels: output channels (1 or 3).
        blocks: ``nn.ModuleList`` of the generator's stages, in order.
        n_classes: number of classes of a conditional generator, 0 when unconditional.
        output_range: the network's native pixel range, mapped to ``[0, 1]`` by ``forward``.
        discriminator: a :class:`Discriminator` or ``None``.
        needs_latent_in_tail: True when ``from_features`` needs ``z`` (style/class conditioning
            reaches every block, as in StyleGAN2 and BigGAN).
        detection: what :func:`priors.load` detected when it was given a checkpoint path without
            ``family`` (a :class:`priors.detect.Detection`), else ``None``.
    """

    latent_shape: Tuple[int, ...]
    resolution: int
    channels: int
    n_classes: int = 0
    output_range: Tuple[float, float] = (-1.0, 1.0)
    needs_latent_in_tail: bool = False
    detection: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.discriminator: Optional[Discriminator] = None

    # ------------------------------------------------------------------ hooks for families
    def context(self, z: Optional[torch.Tensor], c=None) -> Any:
        """Per-sample conditioning the blocks need; ``None`` for unconditional DCGAN-like nets."""
        return None

    def stem(self, z: torch.Tensor, ctx: Any) -> torch.Tensor:  # pragma: no cover - abstract
        """The tensor fed to ``blocks[0]``."""
        raise NotImplementedError

    def run_block(self, i: int, h: torch.Tensor, ctx: Any) -> torch.Tensor:
        return self.blocks[i](h)

    def output(self, h: torch.Tensor, ctx: Any) -> torch.Tensor:
        """Native-range image from the output of the last block."""
        return h

    # ------------------------------------------------------------------ public interface
    def _check_split(self, k: int) -> None:
        n = len(self.blocks)
        if not isinstance(k, int) or not 0 <= k <= n:
            raise ValueError(f"split index k must be an int in 0..{n} (this generator has {n} blocks), got {k!r}")

    def _check_class(self, z: torch.Tensor, c) -> None:
        if self.n_classes and c is None:
            raise ValueError(f"this generator is class-conditional ({self.n_classes} classes): pass c, "
                             f"integer ids (B,) or a class vector (B, {self.n_classes})")

    #: Clamp images to ``[0, 1]`` (straight-through: the gradient is that of the unclamped map).
    #: Networks without a final tanh (PGGAN, StyleGAN2) overshoot their nominal range; fidelity
    #: tests against reference implementations turn this off to compare raw outputs.
    clamp_output: bool = True

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Map native-range images to ``[0, 1]``.

        Values are clamped to ``[0, 1]`` with a straight-through gradient, so the optimizer still
        sees the gradient of the affine map where the network overshoots its range.
        """
        lo, hi = self.output_range
        x = (x - lo) / (hi - lo)
        if self.clamp_output:
            x = x + (x.clamp(0.0, 1.0) - x).detach()
        return x

    def features(self, z: torch.Tensor, k: int, c=None) -> torch.Tensor:
        """Run the stem and the first ``k`` blocks: ``(B, *latent_shape) -> (B, C_k, H_k, W_k)``."""
        check_latent(z, self.latent_shape)
        self._check_split(k)
        self._check_class(z, c)
        ctx = self.context(z, c)
        h = self.stem(z, ctx)
        for i in range(k):
            h = self.run_block(i, h, ctx)
        return h

    def from_features(self, h: torch.Tensor, k: int, c=None, z: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Run blocks ``k..`` and the output layer on features ``h``; images in ``[0, 1]``.

        ``z`` is required when :attr:`needs_latent_in_tail` (it conditions the tail blocks).
        """
        self._check_split(k)
        if self.needs_latent_in_tail and z is None:
            raise ValueError(f"{type(self).__name__}.from_features needs the latent z: its tail blocks are conditioned on it")
        if z is not None:
            check_latent(z, self.latent_shape)
        self._check_class(h, c)
        ctx = self.context(z, c)
        for i in range(k, len(self.blocks)):
            h = self.run_block(i, h, ctx)
        return self.to_unit(self.output(h, ctx))

    def forward(self, z: torch.Tensor, c=None) -> torch.Tensor:
        """``(B, *latent_shape) -> (B, channels, resolution, resolution)`` in ``[0, 1]``."""
        check_latent(z, self.latent_shape)
        self._check_class(z, c)
        ctx = self.context(z, c)
        h = self.stem(z, ctx)
        for i in range(len(self.blocks)):
            h = self.run_block(i, h, ctx)
        return self.to_unit(self.output(h, ctx))

    def sample_latents(self, n: int, seed: Optional[int] = None, device=None,
                       dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """``n`` latents ``(n, *latent_shape)`` from the model's prior (standard normal by default).

        Deterministic for a given ``seed`` (drawn on the CPU, then moved), and never touches the
        global RNG state.
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        gen = _seeded_generator(seed)
        z = torch.randn((n, *self.latent_shape), generator=gen, dtype=torch.float32)
        dtype = dtype or self._param_dtype()
        return z.to(device=device or self._param_device(), dtype=dtype)

    def copy_sharing_discriminator(self) -> "Generator":
        """A deep copy of the generator whose ``discriminator`` is this one's (not copied)."""
        disc = self.discriminator
        self.discriminator = None
        try:
            clone = copy.deepcopy(self)
        finally:
            self.discriminator = disc
        clone.discriminator = disc
        return clone

    def finetunable_copy(self) -> "Generator":
        """A deep copy whose parameters require grad (still in eval mode: batch-norm statistics
        stay frozen); the shared frozen generator is untouched. The discriminator is not copied."""
        clone = self.copy_sharing_discriminator()
        clone.eval()
        for p in clone.parameters():
            p.requires_grad_(True)
        if clone.discriminator is not None:
            clone.discriminator.requires_grad_(False)
        return clone

    # ------------------------------------------------------------------ optional capabilities
    latent_spaces: Tuple[str, ...] = ("z",)

    def in_space(self, space: str) -> "Generator":
        """A view of this generator whose latent lives in ``space`` (e.g. StyleGAN2's ``"w"`` or
        ``"w+"``), sharing weights. The base class has only ``"z"``."""
        if space not in self.latent_spaces:
            raise ValueError(f"{type(self).__name__} has latent spaces {list(self.latent_spaces)}, got {space!r}")
        return self

    def set_noise_seed(self, seed: Optional[int]) -> None:
        """Fix the per-layer noise inputs (StyleGAN2) from ``seed`` for a whole solve; no-op here."""

    def block_parameters(self, upto: int) -> list:
        """Parameters of the stem-side modules and ``blocks[:upto]`` (DGP's progressive stages)."""
        return [p for b in self.blocks[:upto] for p in b.parameters()]

    # ------------------------------------------------------------------ helpers
    def _param_device(self):
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def _param_dtype(self):
        for t in self.parameters():
            return t.dtype
        return torch.get_default_dtype()

    def extra_repr(self) -> str:
        return (f"latent_shape={tuple(self.latent_shape)}, resolution={self.resolution}, channels={self.channels}, "
                f"blocks={len(self.blocks)}, n_classes={self.n_classes}")


class WrappedGenerator(Generator):
    """A user's own ``nn.Module`` mapping latents to images, seen as a :class:`Generator`."""

    def __init__(self, module: nn.Module, latent_shape: Sequence[int], output_range=(-1.0, 1.0),
                 blocks: Optional[Sequence[nn.Module]] = None, resolution: Optional[int] = None,
                 channels: Optional[int] = None) -> None:
        super().__init__()
        memo: dict = {}
        module = freeze(copy.deepcopy(module, memo))
        self.latent_shape = tuple(int(s) for s in latent_shape)
        self.output_range = (float(output_range[0]), float(output_range[1]))
        if blocks is None:
            blocks = list(module) if isinstance(module, nn.Sequential) else [module]
        else:
            # the blocks given are modules of the user's network: use their frozen copies
            missing = [i for i, b in enumerate(blocks) if id(b) not in memo]
            if missing:
                raise ValueError(f"blocks {missing} are not submodules of the wrapped module")
            blocks = [memo[id(b)] for b in blocks]
        self.blocks = nn.ModuleList(blocks)
        freeze(self)
        with torch.no_grad():
            z = torch.zeros((1, *self.latent_shape), dtype=self._param_dtype(), device=self._param_device())
            out = self.forward(z)
        if out.dim() != 4:
            raise ValueError(f"the wrapped module must return images (B, C, H, W); got shape {tuple(out.shape)}")
        self.channels = channels or out.shape[1]
        self.resolution = resolution or out.shape[-1]

    def stem(self, z, ctx):
        return z


def wrap(module: nn.Module, latent_shape: Sequence[int], output_range=(-1.0, 1.0),
         blocks: Optional[Sequence[nn.Module]] = None) -> Generator:
    """Turn any ``nn.Module`` mapping latents ``(B, *latent_shape)`` to images ``(B, C, H, W)`` into
    a frozen :class:`Generator`.

    Args:
        module: the network; it is deep-copied and frozen.
        latent_shape: shape of one latent, e.g. ``(128,)`` or ``(100, 1, 1)``.
        output_range: the network's native pixel range (``(-1, 1)`` for tanh outputs,
            ``(0, 1)`` for sigmoid ones); mapped to ``[0, 1]``.
        blocks: the stages, in order, that split points and DGP stages address. Default: the
            children of an ``nn.Sequential``, else the whole module as one block.

    Example::

        >>> import torch
        >>> from torch import nn
        >>> import priors
        >>> net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 3 * 8 * 8),
        ...                     nn.Sigmoid(), nn.Unflatten(1, (3, 8, 8)))
        >>> G = priors.wrap(net, latent_shape=(16,), output_range=(0, 1))
        >>> z = G.sample_latents(4, seed=0)
        >>> G(z).shape, len(G.blocks)
        (torch.Size([4, 3, 8, 8]), 5)
    """
    return WrappedGenerator(module, latent_shape, output_range=output_range, blocks=blocks)
