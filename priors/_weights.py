"""Shared helpers for family loaders: safe checkpoint reading, RNG-free module construction and
seeded random weights for the ``tiny()`` test instances."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)

__all__ = ["torch_load", "select_state_dict", "read_state_dict", "build_empty", "seeded_init_", "load_strict", "layer_indices"]


def torch_load(path):
    """``torch.load(path, map_location="cpu", weights_only=True)``: no pickled code runs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def select_state_dict(obj, key: Optional[str] = None, prefix: str = "",
                      what: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint.

    Args:
        obj: what :func:`torch_load` returned.
        key: entry holding the state dict in a dict checkpoint (e.g. ``"netG_state_dict"``);
            ``None`` when the file is the state dict itself.
        prefix: keep only keys starting with this prefix, stripped (e.g. ``"main."``). A leading
            ``"module."`` (``nn.DataParallel``) is stripped first.
    """
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = list(obj.keys()) if isinstance(obj, Mapping) else type(obj).__name__
            raise ValueError(f"{what}: expected a dict with key {key!r}, found {found}")
        obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{what}: expected a state dict of tensors, got {type(obj).__name__}")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    if prefix:
        kept = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not kept:
            raise ValueError(f"{what}: no key starts with {prefix!r}; keys are {list(sd)[:8]}")
        sd = kept
    return sd


def read_state_dict(path, key: Optional[str] = None, prefix: str = "") -> Dict[str, torch.Tensor]:
    """:func:`torch_load` then :func:`select_state_dict`."""
    return select_state_dict(torch_load(path), key, prefix, what=str(path))


def layer_indices(sd: Mapping[str, torch.Tensor]) -> list:
    """Sorted integer layer indices of an ``nn.Sequential`` state dict (``"3.weight"`` -> 3)."""
    idx = set()
    for k in sd:
        head = k.split(".", 1)[0]
        if not head.isdigit():
            raise ValueError(f"expected nn.Sequential keys like '0.weight', got {k!r}")
        idx.add(int(head))
    return sorted(idx)


def build_empty(factory: Callable[[], M]) -> M:
    """Build ``factory()`` on the meta device (no memory, no global RNG draws), then allocate
    uninitialized CPU storage; the caller loads or initializes every tensor."""
    with torch.device("meta"):
        module = factory()
    return module.to_empty(device="cpu")


def load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with an error naming the model and the mismatches."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(sd[k].shape)}"
             for k in own if k in sd and own[k].shape != sd[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"{what}: checkpoint does not match the architecture; missing {missing}, "
                         f"unexpected {unexpected}, wrong shapes {wrong}")
    module.load_state_dict(sd, strict=True)


@torch.no_grad()
def seeded_init_(module: nn.Module, seed: int) -> nn.Module:
    """Fill every parameter and floating buffer from a private ``torch.Generator``:
    weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2), batch-norm scales ~ 1 + N(0, 0.1^2),
    running means ~ N(0, 0.1^2), running variances ~ U(0.5, 1.5). Never touches global RNG."""
    gen = torch.Generator().manual_seed(int(seed))
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        leaf = name.rsplit(".", 1)[-1]
        if not t.is_floating_point():
            t.zero_()
        elif leaf == "running_var":
            t.copy_(0.5 + torch.rand(t.shape, generator=gen))
        elif t.dim() == 1 and leaf == "weight":  # normalization scale
            t.copy_(1 + 0.1 * torch.randn(t.shape, generator=gen))
        elif t.dim() <= 1:
            t.copy_(0.1 * torch.randn(t.shape, generator=gen))
        else:
            fan_in = t[0].numel() if not isinstance(_owner(module, name), nn.ConvTranspose2d) \
                else t.shape[0] * t[0, 0].numel() // 4
            t.copy_(torch.randn(t.shape, generator=gen) / math.sqrt(max(fan_in, 1)))
    return module


def _owner(root: nn.Module, name: str) -> nn.Module:
    return root.get_submodule(name.rsplit(".", 1)[0]) if "." in name else root
