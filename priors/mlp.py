"""Fully connected GANs (the classic MNIST MLP GAN).

Generator: ``nn.Sequential(Linear, ReLU, ..., Linear, Tanh)`` mapping ``z (B, nz)`` to a flat
image ``C*R*R`` in ``[-1, 1]``. Each ``Linear`` with its activation is one block, so
``features(z, k)`` is ``(B, hidden_k)``. Discriminator: ``nn.Sequential(Linear, LeakyReLU(0.2), ...,
Linear, Sigmoid)`` on the flattened image in ``[-1, 1]``; ``features`` returns the hidden
activations. Layer sizes are read from the state-dict shapes.

Example::

    >>> from priors import mlp
    >>> G = mlp.tiny()
    >>> z = G.sample_latents(2, seed=0)
    >>> G(z).shape, G.features(z, 1).shape, G.discriminator(G(z)).shape
    (torch.Size([2, 1, 8, 8]), torch.Size([2, 32]), torch.Size([2]))
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ._weights import build_empty, layer_indices, load_strict, read_state_dict, seeded_init_
from .base import Discriminator, Generator, freeze

__all__ = ["MLPGenerator", "MLPDiscriminator", "from_checkpoint", "tiny", "ENTRIES"]

_REPO = "https://raw.githubusercontent.com/csinva/gan-vae-pretrained-pytorch/master/mnist_gan_mlp/weights/"

ENTRIES = [dict(
    name="mlp-mnist28",
    family="mlp",
    resolution=28,
    licence="MIT",
    description="MLP GAN on MNIST digits (28x28 grey, nz=64), generator and discriminator; "
                "csinva/gan-vae-pretrained-pytorch",
    files=[dict(filename="mnist-mlp-G--300.ckpt", url=_REPO + "G--300.ckpt",
                sha256="3163c6503c144d35fe44bb0247bbc61cd8e49c50ea3d84c1b7c080dc18fbf84c", size=1136812),
           dict(filename="mnist-mlp-D--300.ckpt", url=_REPO + "D--300.ckpt",
                sha256="5ccc1cee6b036477a4f4c5f789f370b4ed9405dba5a16298291d355f6d50836a", size=1069167)],
    kwargs=dict(discriminator="mnist-mlp-D--300.ckpt"),
)]


def _linear_sizes(sd: Mapping[str, torch.Tensor], what: str) -> List[Tuple[int, int]]:
    """``(in, out)`` of each ``Linear`` of an ``nn.Sequential`` alternating Linear/activation."""
    idx = layer_indices(sd)
    if idx != list(range(0, 2 * len(idx), 2)):
        raise ValueError(f"{what}: expected Linear layers at indices 0, 2, 4, ..., got {idx}")
    sizes = []
    for i in idx:
        w, b = sd.get(f"{i}.weight"), sd.get(f"{i}.bias")
        if w is None or w.dim() != 2 or b is None:
            raise ValueError(f"{what}: layer {i} is not a Linear with bias")
        if sizes and sizes[-1][1] != w.shape[1]:
            raise ValueError(f"{what}: layer {i} expects {w.shape[1]} inputs, previous layer gives {sizes[-1][1]}")
        sizes.append((int(w.shape[1]), int(w.shape[0])))
    return sizes


def _stack(sizes: Sequence[Tuple[int, int]], hidden, last) -> List[nn.Sequential]:
    """``Linear`` + activation per size; ``hidden``/``last`` are activation classes or factories."""
    n = len(sizes)
    return [nn.Sequential(nn.Linear(i, o), last() if j == n - 1 else hidden()) for j, (i, o) in enumerate(sizes)]


def _stacked_keys(sd: Mapping[str, torch.Tensor], prefix: str = "") -> dict:
    """Sequential keys ``"2j.weight"`` -> our block keys ``"{prefix}j.0.weight"``."""
    out = {}
    for k, v in sd.items():
        i, rest = k.split(".", 1)
        out[f"{prefix}{int(i) // 2}.0.{rest}"] = v
    return out


class MLPGenerator(Generator):
    """``z (B, nz) -> (B, C, R, R)`` in ``[0, 1]`` (native ``[-1, 1]``, tanh output)."""

    def __init__(self, sizes: Sequence[Tuple[int, int]], channels: int = 1) -> None:
        super().__init__()
        out = sizes[-1][1]
        res = math.isqrt(out // channels) if out % channels == 0 else 0
        if res * res * channels != out:
            raise ValueError(f"last layer has {out} outputs: not channels*R*R for channels={channels}")
        self.blocks = nn.ModuleList(_stack(sizes, nn.ReLU, nn.Tanh))
        self.latent_shape = (sizes[0][0],)
        self.channels, self.resolution = channels, res
        self.output_range = (-1.0, 1.0)

    def stem(self, z, ctx):
        return z

    def output(self, h, ctx):
        return h.reshape(h.shape[0], self.channels, self.resolution, self.resolution)


class MLPDiscriminator(Discriminator):
    """``(B, C, R, R)`` images in ``[0, 1]`` -> ``(B,)`` probabilities (sigmoid output);
    ``features(x)`` is the list of hidden activations ``(B, hidden_j)``."""

    input_range = (-1.0, 1.0)

    def __init__(self, sizes: Sequence[Tuple[int, int]]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_stack(sizes, lambda: nn.LeakyReLU(0.2), nn.Sigmoid))
        self.in_features = sizes[0][0]

    def _flat(self, x):
        if x.dim() != 4 or x[0].numel() != self.in_features:
            raise ValueError(f"discriminator expects images (B, C, H, W) with C*H*W={self.in_features}, "
                             f"got {tuple(x.shape)}")
        return self.to_native(x).flatten(1)

    def features(self, x, c=None):
        h, feats = self._flat(x), []
        for layer in self.layers[:-1]:
            h = layer(h)
            feats.append(h)
        return feats

    def forward(self, x, c=None):
        return self.layers[-1](self.features(x, c)[-1]).squeeze(1)


def load_discriminator(path) -> MLPDiscriminator:
    """A frozen :class:`MLPDiscriminator` from a plain ``nn.Sequential`` state dict."""
    what = f"MLP discriminator checkpoint {path}"
    sd = read_state_dict(path)
    D = build_empty(lambda: MLPDiscriminator(_linear_sizes(sd, what)))
    load_strict(D.layers, _stacked_keys(sd), what)
    return freeze(D)


def from_checkpoint(path, device=None, discriminator=None, channels: int = 1) -> MLPGenerator:
    """Load an MLP generator state dict (frozen), and its discriminator when given.

    Args:
        path: the generator's ``nn.Sequential`` state dict.
        discriminator: the discriminator's state dict file; a relative path is looked up next to
            ``path`` first. ``None``: no discriminator.
        channels: image channels (the resolution follows from the output size).
    """
    what = f"MLP generator checkpoint {path}"
    sd = read_state_dict(path)
    G = build_empty(lambda: MLPGenerator(_linear_sizes(sd, what), channels))
    load_strict(G.blocks, _stacked_keys(sd), what)
    if discriminator is not None:
        dpath = Path(discriminator)
        if not dpath.is_absolute() and (Path(path).parent / dpath).is_file():
            dpath = Path(path).parent / dpath
        G.discriminator = load_discriminator(dpath)
    freeze(G)
    return G.to(device) if device is not None else G


def tiny(seed: int = 0, nz: int = 16, hidden: int = 32, resolution: int = 8, channels: int = 1) -> MLPGenerator:
    """A random-weight MLP GAN for tests: ``z (B, 16) -> (B, 1, 8, 8)`` with a discriminator."""
    out = channels * resolution * resolution
    G = seeded_init_(build_empty(lambda: MLPGenerator([(nz, hidden), (hidden, hidden), (hidden, out)], channels)), seed)
    D = seeded_init_(build_empty(lambda: MLPDiscriminator([(out, hidden), (hidden, hidden), (hidden, 1)])), seed + 1)
    G.discriminator = freeze(D)
    return freeze(G)
