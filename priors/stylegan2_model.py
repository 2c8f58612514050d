"""StyleGAN2 generator and discriminator modules (rosinality ``stylegan2-pytorch`` semantics).

The family API (checkpoint loading, registry entries, ``tiny``) is :mod:`priors.stylegan2`;
this module holds the networks: :class:`StyleGAN2Generator` (mapping + synthesis stages,
latent spaces z / w / w+, truncation, seeded fixed noise) and :class:`StyleGAN2Discriminator`.

Example::

    >>> from priors.stylegan2_model import StyleGAN2Generator
    >>> G = StyleGAN2Generator(32, 16, 2, {4: 16, 8: 16, 16: 8, 32: 8})
    >>> G.in_space("w+").sample_latents(2, seed=0).shape
    torch.Size([2, 8, 16])
"""
from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import torch
from torch import nn

from .base import Discriminator, Generator, check_latent, freeze
from .stylegan2_layers import (ConstantInput, DiscriminatorNet, EqualLinear, PixelNorm,
                               StyledConv, ToRGB)

__all__ = ["StyleGAN2Generator", "StyleGAN2Discriminator", "build_generator",
           "build_discriminator", "finalize"]

SPACES = ("z", "w", "w+")


class SynthesisStage(nn.Module):
    """One synthesis stage. Stage 0: 4x4 conv + to_rgb; stage j >= 1: 2x up-conv, conv and
    to_rgb added to the upsampled skip. Noise inputs are buffers ``noise_0`` (, ``noise_1``)."""

    def __init__(self, index: int, in_ch: int, out_ch: int, style_dim: int, blur_kernel):
        super().__init__()
        self.index = index
        res = 4 * 2 ** index
        if index == 0:
            self.conv1 = StyledConv(in_ch, out_ch, style_dim, blur_kernel=blur_kernel)
            self.to_rgb = ToRGB(out_ch, style_dim, upsample=False)
        else:
            self.conv0 = StyledConv(in_ch, out_ch, style_dim, upsample=True, blur_kernel=blur_kernel)
            self.conv1 = StyledConv(out_ch, out_ch, style_dim, blur_kernel=blur_kernel)
            self.to_rgb = ToRGB(out_ch, style_dim, blur_kernel=blur_kernel)
        self.out_channels = out_ch
        self.n_noise = 1 if index == 0 else 2
        for i in range(self.n_noise):
            self.register_buffer(f"noise_{i}", torch.zeros(1, 1, res, res))

    @property
    def w_index(self) -> int:
        """Index in w+ of this stage's first style."""
        return max(2 * self.index - 1, 0)

    def forward(self, x, skip, ws):
        """x (B, C_in, r, r), skip (B, 3, r, r) or None, ws (B, num_ws, D) -> (out, skip)."""
        i = self.w_index
        if self.index == 0:
            x = self.conv1(x, ws[:, 0], self.noise_0)
            return x, self.to_rgb(x, ws[:, 1])
        x = self.conv0(x, ws[:, i], self.noise_0)
        x = self.conv1(x, ws[:, i + 1], self.noise_1)
        return x, self.to_rgb(x, ws[:, i + 2], skip)


class StyleGAN2Generator(Generator):
    """StyleGAN2 generator (mapping + synthesis) with latent spaces z, w and w+.

    Attributes: ``style_dim`` (= w_dim = z_dim), ``num_ws`` (styles in w+), ``n_mlp``,
    ``channels_by_res`` {resolution: width}, ``space``, ``psi`` (truncation, 1 = none).
    Output: RGB in [-1, 1] natively, returned in [0, 1].
    """

    channels = 3
    output_range = (-1.0, 1.0)
    needs_latent_in_tail = True
    latent_spaces = SPACES

    def __init__(self, size: int, style_dim: int, n_mlp: int, channels: dict,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), lr_mlp: float = 0.01):
        super().__init__()
        log_size = int(math.log2(size))
        if 2 ** log_size != size or size < 4:
            raise ValueError(f"size must be a power of 2 >= 4, got {size}")
        self.resolution, self.style_dim, self.n_mlp = size, style_dim, n_mlp
        self.channels_by_res = {4 * 2 ** j: int(channels[4 * 2 ** j]) for j in range(log_size - 1)}
        self.num_ws = 2 * log_size - 2
        self.mapping = nn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)])
        self.input = ConstantInput(self.channels_by_res[4])
        stages, in_ch = [], self.channels_by_res[4]
        for j in range(log_size - 1):
            out_ch = self.channels_by_res[4 * 2 ** j]
            stages.append(SynthesisStage(j, in_ch, out_ch, style_dim, list(blur_kernel)))
            in_ch = out_ch
        self.blocks = nn.ModuleList(stages)
        self.register_buffer("w_avg", torch.zeros(style_dim), persistent=False)
        self.w_avg_source = None  # "checkpoint", "estimated" or "given" once set
        self.space, self.psi = "z", 1.0
        self._default_noise = None

    # ------------------------------------------------------------------ latents
    @property
    def latent_shape(self):
        return (self.num_ws, self.style_dim) if self.space == "w+" else (self.style_dim,)

    def _view(self, **changes) -> "StyleGAN2Generator":
        """A new generator object sharing every module and buffer, with attributes changed."""
        view = copy.copy(self)
        for name in ("_modules", "_parameters", "_buffers", "_non_persistent_buffers_set"):
            object.__setattr__(view, name, copy.copy(getattr(self, name)))
        for key, value in changes.items():
            setattr(view, key, value)
        return view

    def in_space(self, space: str) -> "StyleGAN2Generator":
        """A view (shared weights, noise and truncation) whose latent lives in ``space``:
        ``"z"`` (B, style_dim) Gaussian, ``"w"`` (B, style_dim) = mapping(z), or ``"w+"``
        (B, num_ws, style_dim), one w per style input."""
        if space not in SPACES:
            raise ValueError(f"StyleGAN2 latent space must be one of {list(SPACES)}, got {space!r}")
        return self._view(space=space)

    def truncation(self, psi: float, w_avg: Optional[torch.Tensor] = None, n: int = 4096,
                   seed: int = 0) -> "StyleGAN2Generator":
        """A view applying ``w <- w_avg + psi (w - w_avg)`` to every style (all spaces).

        ``w_avg`` (style_dim,): given, else the checkpoint's ``latent_avg``, else the mean of
        mapping(z) over ``n`` latents drawn with ``seed`` (computed once, cached).
        """
        psi = float(psi)
        if not math.isfinite(psi):
            raise ValueError(f"psi must be a finite float, got {psi}")
        if w_avg is not None:
            w_avg = torch.as_tensor(w_avg).reshape(-1)
            if w_avg.numel() != self.style_dim:
                raise ValueError(f"w_avg must have {self.style_dim} values, got shape {tuple(w_avg.shape)}")
            view = self._view(psi=psi, w_avg_source="given")
            view._buffers["w_avg"] = w_avg.to(self.w_avg.device, self.w_avg.dtype)
            return view
        if self.w_avg_source is None:
            self.estimate_w_avg(n=n, seed=seed)
        return self._view(psi=psi)

    @torch.no_grad()
    def estimate_w_avg(self, n: int = 4096, seed: int = 0) -> torch.Tensor:
        """Set and return the mean of mapping(z) over ``n`` seeded standard-normal latents."""
        z = torch.randn(n, self.style_dim, generator=torch.Generator().manual_seed(int(seed)))
        ws = [self.mapping(c.to(self.w_avg)) for c in z.split(1024)]
        self._buffers["w_avg"] = torch.cat(ws).mean(0)
        self.w_avg_source = "estimated"
        return self.w_avg

    def sample_latents(self, n: int, seed: Optional[int] = None, device=None, dtype=None):
        """``n`` latents in this view's space from the prior: z ~ N(0, I); w = mapping(z)
        (same seed, same z); w+ = w repeated num_ws times. Truncation is applied in forward."""
        if self.space == "z":
            return super().sample_latents(n, seed, device, dtype)
        zs = self.in_space("z").sample_latents(n, seed, device, dtype)
        with torch.no_grad():
            w = self.mapping(zs)
        return w if self.space == "w" else w[:, None].repeat(1, self.num_ws, 1)

    # ------------------------------------------------------------------ hooks
    def context(self, z, c=None):
        """The w+ styles (B, num_ws, style_dim), truncated when psi != 1."""
        if self.space == "z":
            z = self.mapping(z)
        ws = z if self.space == "w+" else z[:, None].expand(-1, self.num_ws, -1)
        if self.psi != 1.0:
            ws = self.w_avg + self.psi * (ws - self.w_avg)
        return ws

    def stem(self, z, ws):
        return self.input(ws.shape[0])

    def run_block(self, i, h, ws):
        skip = None
        if i > 0:
            c = self.blocks[i - 1].out_channels
            h, skip = h[:, :c], h[:, c:]
        out, skip = self.blocks[i](h, skip, ws)
        return torch.cat([out, skip], 1)

    def output(self, h, ws):
        return h[:, -3:]

    def forward(self, z, c=None):
        """``(B, *latent_shape) -> (B, 3, resolution, resolution)`` in [0, 1] (no concat/split)."""
        check_latent(z, self.latent_shape)
        ws = self.context(z)
        h, skip = self.stem(z, ws), None
        for block in self.blocks:
            h, skip = block(h, skip, ws)
        return self.to_unit(skip)

    def block_parameters(self, upto: int) -> list:
        """The learned constant input and the parameters of ``blocks[:upto]``."""
        return list(self.input.parameters()) + super().block_parameters(upto)

    # ------------------------------------------------------------------ noise
    def noise_buffers(self) -> list:
        """The current noise inputs, in rosinality's order ``noises.noise_0..``."""
        return [getattr(b, f"noise_{i}") for b in self.blocks for i in range(b.n_noise)]

    def noise_shapes(self) -> list:
        return [tuple(t.shape[-2:]) for t in self.noise_buffers()]

    def set_noise(self, noises: Sequence[torch.Tensor]) -> None:
        """Replace the noise inputs (list in layer order, each (1 or B, 1, r, r)); the tensors
        are stored as new buffers (no in-place update of the old ones)."""
        noises = list(noises)
        shapes = self.noise_shapes()
        if len(noises) != len(shapes):
            raise ValueError(f"expected {len(shapes)} noise tensors, got {len(noises)}")
        it = iter(noises)
        for b in self.blocks:
            for i in range(b.n_noise):
                t = next(it)
                old = getattr(b, f"noise_{i}")
                if t.dim() != 4 or t.shape[1] != 1 or tuple(t.shape[-2:]) != tuple(old.shape[-2:]):
                    raise ValueError(f"noise for stage {b.index} input {i} must have shape "
                                     f"(1 or B, 1, {old.shape[-2]}, {old.shape[-1]}), got {tuple(t.shape)}")
                b._buffers[f"noise_{i}"] = t.to(old.device, old.dtype)

    def set_noise_seed(self, seed: Optional[int]) -> None:
        """Noise inputs drawn once from ``seed`` (standard normal, (1, 1, r, r) per layer) and
        kept for every forward; ``None`` restores the checkpoint's stored noise."""
        if seed is None:
            if self._default_noise is not None:
                self.set_noise(self._default_noise)
            return
        gen = torch.Generator().manual_seed(int(seed))
        self.set_noise([torch.randn((1, 1, *s), generator=gen) for s in self.noise_shapes()])

    def remember_default_noise(self) -> None:
        """Record the current noise buffers as the ones ``set_noise_seed(None)`` restores."""
        self._default_noise = [t.detach().clone() for t in self.noise_buffers()]

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", space={self.space!r}, psi={self.psi}, "
                f"style_dim={self.style_dim}, n_mlp={self.n_mlp}, channels={self.channels_by_res}")


class StyleGAN2Discriminator(Discriminator):
    """rosinality's residual discriminator on images in [0, 1]: ``features(x)`` returns the
    activation after each ResBlock and after the final conv; ``forward(x)`` -> (B,) logits.
    The minibatch-std layer mixes samples in groups of 4 (as trained)."""

    input_range = (-1.0, 1.0)

    def __init__(self, size: int, channels: dict, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.resolution = size
        self.net = DiscriminatorNet(size, channels, blur_kernel)

    def features(self, x, c=None) -> list:
        return self.net.features(self.to_native(x))

    def forward(self, x, c=None):
        return self.net(self.to_native(x))


def build_generator(cfg: dict, lr_mlp: float = 0.01) -> StyleGAN2Generator:
    """An untrained generator from an architecture dict (see ``stylegan2.infer_generator_config``)."""
    return StyleGAN2Generator(cfg["size"], cfg["style_dim"], cfg["n_mlp"], cfg["channels"],
                              cfg["blur_kernel"], lr_mlp=lr_mlp)


def build_discriminator(cfg: dict) -> StyleGAN2Discriminator:
    return StyleGAN2Discriminator(cfg["size"], cfg["channels"], cfg["blur_kernel"])


def finalize(G: StyleGAN2Generator, D: Optional[StyleGAN2Discriminator] = None) -> StyleGAN2Generator:
    """Freeze ``G`` (and ``D``), remember its noise as the default, attach ``D``."""
    G.remember_default_noise()
    freeze(G)
    if D is not None:
        G.discriminator = freeze(D)
    return G
