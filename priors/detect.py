"""Which generator family a checkpoint holds, read from its tensor names and shapes.

:func:`detect` reads the file with ``torch.load(weights_only=True)`` (nothing pickled runs) and
checks it against one rule per supported layout (:data:`RULES`). Exactly one rule must match:
none, or more than one, is a ``ValueError`` listing every layout looked for.

Example::

    >>> import torch, tempfile, pathlib
    >>> from priors.detect import detect
    >>> sd = {"0.weight": torch.zeros(32, 16), "0.bias": torch.zeros(32),
    ...       "2.weight": torch.zeros(64, 32), "2.bias": torch.zeros(64)}
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "g.pth"
    >>> torch.save(sd, path)
    >>> detect(path).family
    'mlp'
"""
from __future__ import annotations

import argparse
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Mapping, Optional

import torch

from .dcgan import parse_stages, resolve_layout
from .mlp import _linear_sizes
from .pggan_layouts import detect_layout as pggan_layout

__all__ = ["Detection", "RULES", "detect", "read_checkpoint"]

TUTORIAL_NZ = 100  # the DCGAN tutorial's latent size; wider first layers are read as cDCGAN classes


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found: the ``family`` to pass to :func:`priors.load`, the file
    layout, the evidence (the keys or shapes that decided it) and the ``path`` to load."""

    family: str
    layout: str
    evidence: str
    path: Path

    def __str__(self) -> str:
        return f"family {self.family!r} ({self.layout}: {self.evidence})"


@dataclass(frozen=True)
class Rule:
    """One supported layout: ``match(checkpoint)`` returns the evidence, or None."""

    family: str
    layout: str
    looks_for: str
    match: Callable[[object], Optional[str]]


def _state_dict(obj) -> Optional[Mapping[str, torch.Tensor]]:
    """``obj`` when it is a non-empty mapping of string keys to tensors, else None."""
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in obj.items()):
        return obj
    return None


def _strip_module(sd: Mapping[str, torch.Tensor]) -> dict:
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}


def _biggan_deep(ckpt) -> Optional[str]:
    sd = _state_dict(ckpt)
    if sd and "embeddings.weight" in sd and "generator.gen_z.bias" in sd:
        return "keys 'embeddings.weight', 'generator.gen_z.*'"
    return None


def _biggan_pytorch(ckpt) -> Optional[str]:
    sd = _state_dict(ckpt)
    if sd and "shared.weight" in sd and "blocks.0.0.conv1.weight" in sd:
        return "keys 'shared.weight', 'blocks.0.0.conv1.weight'"
    return None


def _stylegan2_rosinality(ckpt) -> Optional[str]:
    if isinstance(ckpt, Mapping) and _state_dict(ckpt.get("g_ema")) is not None:
        return "a dict with 'g_ema'"
    sd = _state_dict(ckpt)
    if sd and "input.input" in sd and "style.1.weight" in sd:
        return "generator keys 'input.input', 'style.1.weight'"
    return None


def _stylegan2_nvlabs(ckpt) -> Optional[str]:
    if isinstance(ckpt, Mapping) and "synthesis.b4.const" in (_state_dict(ckpt.get("G_ema")) or {}):
        return "a dict with 'G_ema' holding 'synthesis.b4.const'"
    return None


def _pggan(ckpt) -> Optional[str]:
    if isinstance(ckpt, Mapping) and isinstance(ckpt.get("state_dict"), Mapping):
        ckpt = ckpt["state_dict"]
    sd = _state_dict(ckpt)
    if sd is None:
        return None
    try:
        return f"{pggan_layout(_strip_module(sd))} layout"
    except ValueError:
        return None


def _tutorial_in_channels(ckpt) -> Optional[int]:
    """Input channels of the first transposed convolution of a DCGAN-tutorial checkpoint."""
    try:
        key, prefix = resolve_layout(ckpt, None, "main.")
        sd = ckpt[key] if key is not None else ckpt
        if _state_dict(sd) is None:
            return None
        sd = _strip_module(sd)
        if prefix:
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        stages = parse_stages(sd, "checkpoint")
        return int(stages[0]["conv"]["weight"].shape[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _dcgan(ckpt) -> Optional[str]:
    nz = _tutorial_in_channels(ckpt)
    if nz is not None and nz <= TUTORIAL_NZ:
        return f"nn.Sequential of transposed convolutions, first layer takes nz={nz} channels"
    return None


def _cdcgan(ckpt) -> Optional[str]:
    nz = _tutorial_in_channels(ckpt)
    if nz is not None and nz > TUTORIAL_NZ:
        return (f"nn.Sequential of transposed convolutions whose first layer takes {nz} channels, read "
                f"as nz={TUTORIAL_NZ} + {nz - TUTORIAL_NZ} classes (pass family='dcgan' for an "
                f"unconditional DCGAN with nz={nz})")
    return None


def _mlp_out_features(ckpt) -> Optional[int]:
    """Output size of an ``nn.Sequential`` of ``Linear`` layers (``"0.weight"``, ``"2.weight"``...)."""
    sd = _state_dict(ckpt)
    if sd is None:
        return None
    try:
        sizes = _linear_sizes(_strip_module(sd), "checkpoint")
    except ValueError:
        return None
    return sizes[-1][1] if len(sizes) >= 2 else None


def _mlp(ckpt) -> Optional[str]:
    out = _mlp_out_features(ckpt)
    if out is not None and out > 1:
        return f"nn.Sequential of Linear layers with {out} outputs"
    return None


RULES: List[Rule] = [
    Rule("biggan", "pytorch-pretrained-biggan", "'embeddings.weight' and 'generator.gen_z.*' "
         "(pytorch_model.bin, with config.json beside it)", _biggan_deep),
    Rule("biggan-pytorch", "BigGAN-PyTorch G_ema", "'shared.weight' and 'blocks.0.0.conv1.weight' "
         "(G_ema.pth, D.pth beside it)", _biggan_pytorch),
    Rule("stylegan2", "rosinality", "a dict with 'g_ema', or a state dict with 'input.input' and "
         "'style.1.weight'", _stylegan2_rosinality),
    Rule("stylegan2", "NVlabs state dicts", "a dict with 'G_ema' holding 'synthesis.b4.const'",
         _stylegan2_nvlabs),
    Rule("pggan", "PGGAN", "'layer0.conv.weight' (mGANprior/InterFaceGAN), 'layer1.wscale.b' "
         "(gandissect) or 'features.0.conv.weight' (old gandissect)", _pggan),
    Rule("dcgan", "DCGAN tutorial", "an nn.Sequential of ConvTranspose2d (+ BatchNorm2d) under "
         "'main.' or 'netG_state_dict', first layer with at most 100 input channels", _dcgan),
    Rule("cdcgan", "cDCGAN", "the DCGAN layout with more than 100 input channels "
         "(nz=100 + one channel per class)", _cdcgan),
    Rule("mlp", "MLP", "an nn.Sequential of Linear layers ('0.weight', '2.weight', ...) with an "
         "image-sized output", _mlp),
]


def _looked_for() -> str:
    return "; ".join(f"{r.family} ({r.layout}): {r.looks_for}" for r in RULES)


def read_checkpoint(path: Path):
    """``torch.load(path, weights_only=True)`` (``argparse.Namespace`` allowed, as rosinality
    checkpoints store one); ``ValueError`` for a pickle that stores code or a non-checkpoint."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):  # garbage, not a pickle that names code
            raise ValueError(f"{path} is not a PyTorch checkpoint (torch.load cannot read it); pass "
                             f"a state dict file saved with torch.save") from err
        raise ValueError(
            f"{path} stores Python objects other than tensors (a pickle with code, such as an NVlabs "
            f".pkl); it is not loaded, as that would run code from the file. If you trust it, pass "
            f"family='stylegan2' and trust_pickle=True, or give family= one of the supported families"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a PyTorch checkpoint ({first}); pass a state dict file "
                         f"saved with torch.save") from err


def _detect_folder(path: Path) -> Detection:
    if (path / "pytorch_model.bin").is_file() and (path / "config.json").is_file():
        found = detect(path / "pytorch_model.bin")
        if found.family == "biggan":
            return Detection("biggan", found.layout, "folder with pytorch_model.bin and config.json", path)
    if (path / "G_ema.pth").is_file():
        return detect(path / "G_ema.pth")
    raise ValueError(f"{path} is a folder without pytorch_model.bin + config.json (BigGAN, "
                     f"pytorch-pretrained-biggan) or G_ema.pth (BigGAN-PyTorch); pass a checkpoint "
                     f"file, or family= one of the supported families")


def detect(path) -> Detection:
    """The family of the checkpoint at ``path`` (a file, or a BigGAN folder).

    Raises:
        ValueError: no supported layout matches, or several do (the message lists every layout
            looked for), or the file is not a weights-only PyTorch checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        return _detect_folder(path)
    ckpt = read_checkpoint(path)
    found = [(rule, evidence) for rule in RULES for evidence in [rule.match(ckpt)] if evidence]
    if len(found) == 1:
        rule, evidence = found[0]
        return Detection(rule.family, rule.layout, evidence, path)
    if not found:
        disc = _mlp_out_features(ckpt) == 1 or (isinstance(ckpt, Mapping) and "embed.weight" in ckpt)
        what = ("looks like a discriminator (one output per image); pass the generator's file. "
                if disc else "matches no supported generator layout. ")
        raise ValueError(f"{path} {what}Looked for: {_looked_for()}. Or pass family= explicitly")
    names = ", ".join(f"{r.family} ({r.layout}: {e})" for r, e in found)
    raise ValueError(f"{path} is ambiguous: it matches {names}; pass family= to choose. "
                     f"Looked for: {_looked_for()}")
