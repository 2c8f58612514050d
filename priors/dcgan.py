"""DCGAN generators in the PyTorch DCGAN-tutorial layout.

The tutorial generator is ``nn.Sequential`` under ``main``: ``ConvTranspose2d(nz, ngf*2^(n-2), 4,
1, 0)`` from the ``1x1`` latent to ``4x4``, then ``ConvTranspose2d(.., 4, 2, 1)`` stages that
double the size, each followed by ``BatchNorm2d`` + ``ReLU``, and a last ``ConvTranspose2d`` to
``nc`` channels + ``Tanh``. ``nz``, ``ngf``, ``nc`` and the resolution (``4 * 2^(n-1)`` for ``n``
transposed convolutions) are read from the state-dict shapes. Each transposed convolution with
its normalization and activation is one block, so split points sit at ``4x4, 8x8, ...``.

Example::

    >>> from priors import dcgan
    >>> G = dcgan.tiny()
    >>> z = G.sample_latents(2, seed=0)
    >>> G(z).shape, [tuple(G.features(z, k).shape[1:]) for k in range(1, len(G.blocks))]
    (torch.Size([2, 3, 16, 16]), [(8, 4, 4), (4, 8, 8)])
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ._weights import build_empty, layer_indices, load_strict, seeded_init_, select_state_dict, torch_load
from .base import Discriminator, Generator, freeze

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "from_checkpoint", "tiny", "parse_stages",
           "build_stages", "resolve_layout", "ENTRIES"]

ENTRIES = [dict(
    name="dcgan-digiface64",
    family="dcgan",
    resolution=64,
    licence="MIT",
    description="DCGAN trained on synthetic DigiFace-1M faces (64x64 RGB, nz=100); "
                "from the PyPI package gan-face-generate 1.1.1",
    files=[dict(filename="digiface64-weights.tar", pypi="gan-face-generate==1.1.1",
                member="gan_face_generate/weights.tar",
                sha256="0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
                size=14322251)],
    kwargs=dict(key="netG_state_dict"),
)]


def parse_stages(sd: Mapping[str, torch.Tensor], what: str) -> List[Dict[str, Dict[str, torch.Tensor]]]:
    """Group a tutorial-layout ``nn.Sequential`` state dict into stages.

    Returns one dict per transposed convolution: ``{"conv": {"weight": (C_in, C_out, 4, 4)
    [, "bias"]}, "bn": {...} or absent}``; layers without tensors (ReLU, Dropout, Tanh) vanish.
    """
    stages: List[Dict[str, Dict[str, torch.Tensor]]] = []
    for i in layer_indices(sd):
        layer = {k.split(".", 1)[1]: v for k, v in sd.items() if k.split(".", 1)[0] == str(i)}
        w = layer.get("weight")
        if w is not None and w.dim() == 4:
            stages.append({"conv": layer})
        elif "running_mean" in layer:
            if not stages or "bn" in stages[-1]:
                raise ValueError(f"{what}: batch norm at layer {i} does not follow a transposed convolution")
            stages[-1]["bn"] = layer
        else:
            raise ValueError(f"{what}: layer {i} with keys {sorted(layer)} is neither a "
                             "ConvTranspose2d nor a BatchNorm2d")
    if len(stages) < 2:
        raise ValueError(f"{what}: expected at least 2 transposed convolutions, found {len(stages)}")
    return stages


def build_stages(shapes: Sequence[Tuple[int, int, bool, bool]]) -> nn.ModuleList:
    """Blocks for ``(c_in, c_out, has_bias, has_bn)`` per stage: the first maps ``1x1 -> 4x4``,
    the others double the size; all but the last end in ReLU, the last in Tanh."""
    blocks = []
    for j, (cin, cout, bias, bn) in enumerate(shapes):
        last = j == len(shapes) - 1
        layers: List[nn.Module] = [nn.ConvTranspose2d(cin, cout, 4, 1 if j == 0 else 2, 0 if j == 0 else 1, bias=bias)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.Tanh() if last else nn.ReLU())
        blocks.append(nn.Sequential(*layers))
    return nn.ModuleList(blocks)


def stage_shapes(stages, what: str) -> List[Tuple[int, int, bool, bool]]:
    """``(c_in, c_out, has_bias, has_bn)`` per parsed stage, checking the chain of channels."""
    shapes = []
    for j, st in enumerate(stages):
        w = st["conv"]["weight"]
        if tuple(w.shape[2:]) != (4, 4):
            raise ValueError(f"{what}: stage {j} kernel must be 4x4 (DCGAN tutorial layout), got {tuple(w.shape[2:])}")
        if shapes and shapes[-1][1] != w.shape[0]:
            raise ValueError(f"{what}: stage {j} expects {w.shape[0]} input channels, previous stage gives {shapes[-1][1]}")
        shapes.append((int(w.shape[0]), int(w.shape[1]), "bias" in st["conv"], "bn" in st))
    return shapes


def stages_state_dict(stages) -> Dict[str, torch.Tensor]:
    """Rename parsed stages to the keys of :func:`build_stages` (``"{j}.0.weight"``, ``"{j}.1.*"``)."""
    out = {}
    for j, st in enumerate(stages):
        out.update({f"{j}.0.{k}": v for k, v in st["conv"].items()})
        out.update({f"{j}.1.{k}": v for k, v in st.get("bn", {}).items()})
    return out


class DCGANGenerator(Generator):
    """A DCGAN: ``z (B, nz, 1, 1) -> (B, nc, R, R)`` in ``[0, 1]`` (native range ``[-1, 1]``).

    ``blocks[j]`` is transposed convolution ``j`` with its batch norm and activation;
    ``features(z, k)`` is ``(B, C_k, 2^(k+1), 2^(k+1))`` for ``0 < k < len(blocks)``.
    """

    def __init__(self, shapes: Sequence[Tuple[int, int, bool, bool]]) -> None:
        super().__init__()
        self.blocks = build_stages(shapes)
        self.nz = shapes[0][0]
        self.latent_shape = (self.nz, 1, 1)
        self.channels = shapes[-1][1]
        self.resolution = 4 * 2 ** (len(shapes) - 1)
        self.output_range = (-1.0, 1.0)

    def stem(self, z, ctx):
        return z


class DCGANDiscriminator(Discriminator):
    """The tutorial discriminator: ``Conv2d(4, 2, 1)`` stages with LeakyReLU(0.2) (batch norm
    after all but the first), then ``Conv2d(.., 1, 4, 1, 0)`` + Sigmoid. Takes ``(B, nc, R, R)``
    in ``[0, 1]``; ``features`` returns each stage's activation, ``forward`` ``(B,)`` probabilities."""

    input_range = (-1.0, 1.0)

    def __init__(self, shapes: Sequence[Tuple[int, int, bool]]) -> None:
        super().__init__()
        stages = []
        for cin, cout, bn in shapes[:-1]:
            layers: List[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
            if bn:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(shapes[-1][0], 1, 4, 1, 0, bias=False)

    def features(self, x, c=None):
        h, feats = self.to_native(x), []
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, x, c=None):
        return torch.sigmoid(self.head(self.features(x, c)[-1])).flatten(1).mean(1)


def _discriminator_from_sd(sd: Mapping[str, torch.Tensor], what: str) -> DCGANDiscriminator:
    """Build and load a tutorial-layout discriminator from its ``main.*`` state dict."""
    convs: list = []
    for i in layer_indices(sd):
        layer = {k.split(".", 1)[1]: v for k, v in sd.items() if k.split(".", 1)[0] == str(i)}
        if "running_mean" in layer:
            convs[-1][1] = layer
        else:
            convs.append([layer, None])
    shapes = [(int(c["weight"].shape[1]), int(c["weight"].shape[0]), bn is not None) for c, bn in convs]
    D = build_empty(lambda: DCGANDiscriminator(shapes))
    ours = {}
    for j, (conv, bn) in enumerate(convs[:-1]):
        ours.update({f"stages.{j}.0.{k}": v for k, v in conv.items()})
        ours.update({f"stages.{j}.1.{k}": v for k, v in (bn or {}).items()})
    ours.update({f"head.{k}": v for k, v in convs[-1][0].items()})
    load_strict(D, ours, what)
    return D


def resolve_layout(raw, key: Optional[str], prefix: str, default_key: str = "netG_state_dict"):
    """``(key, prefix)`` for a loaded checkpoint: ``key`` defaults to ``default_key`` when the
    checkpoint is a dict holding it; ``prefix`` falls back to ``""`` for a bare ``nn.Sequential``."""
    if key is None and isinstance(raw, Mapping) and default_key in raw:
        key = default_key
    sd = raw[key] if key is not None and isinstance(raw, Mapping) and key in raw else raw
    if prefix and isinstance(sd, Mapping):
        names = [k[len("module."):] if k.startswith("module.") else k for k in sd]
        if not any(k.startswith(prefix) for k in names) and all(k.split(".", 1)[0].isdigit() for k in names):
            prefix = ""
    return key, prefix


def from_checkpoint(path, device=None, key: Optional[str] = None, prefix: str = "main.",
                    discriminator_key: Optional[str] = "netD_state_dict") -> DCGANGenerator:
    """Load a tutorial-layout DCGAN generator (frozen), with its discriminator when the checkpoint
    holds one under ``discriminator_key``.

    Args:
        path: a state dict file, or a dict checkpoint with the generator under ``key``.
        device: where to put the model (default CPU).
        key: e.g. ``"netG_state_dict"`` (found automatically when present); ``None`` when the
            file is the state dict itself.
        prefix: key prefix of the ``nn.Sequential`` (``"main."`` in the tutorial; ``""`` is
            used automatically for a bare ``nn.Sequential`` state dict).
    """
    what = f"DCGAN checkpoint {path}"
    raw = torch_load(path)
    key, prefix = resolve_layout(raw, key, prefix)
    stages = parse_stages(select_state_dict(raw, key, prefix, what), what)
    shapes = stage_shapes(stages, what)
    G = build_empty(lambda: DCGANGenerator(shapes))
    load_strict(G.blocks, stages_state_dict(stages), what)
    if key is not None and discriminator_key is not None and discriminator_key in raw:
        _, dprefix = resolve_layout(raw[discriminator_key], None, prefix)
        dsd = select_state_dict(raw, discriminator_key, dprefix, what)
        G.discriminator = freeze(_discriminator_from_sd(dsd, what + " (discriminator)"))
    freeze(G)
    return G.to(device) if device is not None else G


def tiny(seed: int = 0, nz: int = 8, ngf: int = 4, channels: int = 3, n_stages: int = 3) -> DCGANGenerator:
    """A random-weight DCGAN for tests: ``z (B, 8, 1, 1) -> (B, 3, 16, 16)``, with a matching
    random discriminator. Built without touching the global RNG."""
    widths = [ngf * 2 ** (n_stages - 2 - j) for j in range(n_stages - 1)] + [channels]
    cins = [nz] + widths[:-1]
    shapes = [(cin, cout, False, j < n_stages - 1) for j, (cin, cout) in enumerate(zip(cins, widths))]
    G = seeded_init_(build_empty(lambda: DCGANGenerator(shapes)), seed)
    dshapes = [(channels, ngf, False)] + [(ngf * 2 ** j, ngf * 2 ** (j + 1), True) for j in range(n_stages - 2)]
    dshapes.append((dshapes[-1][1], 1, False))
    G.discriminator = freeze(seeded_init_(build_empty(lambda: DCGANDiscriminator(dshapes)), seed + 1))
    return freeze(G)
