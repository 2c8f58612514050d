"""StyleGAN2 priors in rosinality's ``stylegan2-pytorch`` checkpoint layout, in plain PyTorch.

Checkpoints are dicts with ``g_ema`` (the generator state dict), optionally ``d`` (the
discriminator), ``latent_avg`` (converted NVlabs weights) and ``args`` (training checkpoints:
an ``argparse.Namespace``, loaded with ``weights_only=True`` and only that type allow-listed).
A bare ``g_ema`` state dict loads too. The architecture (resolution, style size, mapping
depth, channel widths, blur kernel) is read from the tensors' names and shapes, so
custom-trained models load with no config; ``args``, when present, is cross-checked.

Latent spaces: ``G.in_space("z" | "w" | "w+")`` returns a view sharing weights whose latent
is ``z`` (style_dim,), ``w`` (style_dim,) or ``w+`` (num_ws, style_dim); ``G.truncation(psi)``
pulls w toward the mean w (``latent_avg`` from the checkpoint, else estimated from 4096
seeded samples). Per-layer noise inputs are buffers: fixed by default (the checkpoint's
stored noise), replaced from a seed by ``G.set_noise_seed(seed)`` for a whole solve and
never redrawn inside ``forward``. Split points: ``blocks[0]`` is the 4x4 stage, then one
block per resolution; ``features(z, k)`` holds the activations with the running RGB skip
image as the last 3 channels (see :mod:`priors.stylegan2_model`).

NVlabs pickles (``.pkl``): unpickling runs code stored in the file and needs NVlabs'
``dnnlib`` and ``torch_utils`` modules importable, so it is refused unless you pass
``from_checkpoint(path, trust_pickle=True)`` (which warns). Prefer converting once, in an
environment you trust, to a tensors-only file that loads safely everywhere:

* stylegan2-ada-pytorch ``.pkl`` (PyTorch): with that repository on ``sys.path``,
  ``d = pickle.load(open("network.pkl", "rb"))`` then
  ``torch.save({"G_ema": d["G_ema"].state_dict(), "D": d["D"].state_dict()}, "network.pt")``;
  ``from_checkpoint("network.pt")`` renames the tensors to rosinality's layout
  (:func:`priors.stylegan2_nvlabs.nvlabs_to_rosinality`; its docstring lists what is covered);
* TensorFlow StyleGAN2 ``.pkl`` (e.g. ``stylegan2-ffhq-config-f.pkl``): rosinality's
  ``python convert_weight.py --repo ~/stylegan2 --disc stylegan2-ffhq-config-f.pkl`` (with
  NVlabs' ``stylegan2`` repository cloned) writes ``stylegan2-ffhq-config-f.pt``
  (``g_ema``, ``latent_avg``, ``d``);
* a ``.pt`` that holds Python objects beyond tensors and ``argparse.Namespace``:
  ``ckpt = torch.load(path, weights_only=False)`` in a trusted session, then
  ``torch.save({"g_ema": ckpt["g_ema"], "d": ckpt["d"]}, "clean.pt")``.

Example::

    >>> from priors import stylegan2
    >>> G = stylegan2.tiny(seed=0)
    >>> Gw = G.in_space("w+")
    >>> w = Gw.sample_latents(2, seed=0)
    >>> tuple(w.shape), tuple(Gw(w).shape)
    ((2, 8, 32), (2, 3, 32, 32))
"""
from __future__ import annotations

import argparse
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import torch

from .stylegan2_layers import EqualLinear, kernel_taps
from .stylegan2_nvlabs import nvlabs_to_rosinality
from .stylegan2_model import (StyleGAN2Discriminator, StyleGAN2Generator, build_discriminator,
                              build_generator, finalize)

__all__ = ["ENTRIES", "from_checkpoint", "from_state_dicts", "tiny", "infer_generator_config",
           "infer_discriminator_config", "standard_channels", "init_random_",
           "StyleGAN2Generator", "StyleGAN2Discriminator"]

_NO_SHA = ("not computed: the file is distributed through Google Drive, which this project's build "
           "environment cannot reach; on load the checkpoint's keys and tensor shapes are checked "
           "against the expected architecture instead")
_LICENCE = "Nvidia Source Code License-NC (https://nvlabs.github.io/stylegan2/license.html)"

ENTRIES = [
    dict(name="stylegan2-ffhq-256", family="stylegan2", resolution=256, licence=_LICENCE,
         description=("StyleGAN2 config-f (channel multiplier 2, 8 mapping layers, w 512) trained "
                      "on FFHQ 256x256 by rosinality with stylegan2-pytorch, 550k iterations "
                      "(training checkpoint: g_ema, d, args). FFHQ images: CC BY-NC-SA 4.0."),
         files=[dict(filename="stylegan2-ffhq-256-550000.pt",
                     url="https://drive.google.com/uc?id=1PQutd-JboOCOZqmd95XWxWrO8gGEvRcO",
                     sha256=None, size=None)],
         sha256_note=_NO_SHA,
         kwargs=dict(expect=dict(size=256, style_dim=512, n_mlp=8, channel_multiplier=2))),
    dict(name="stylegan2-ffhq-1024", family="stylegan2", resolution=1024, licence=_LICENCE,
         description=("NVlabs StyleGAN2 config-f FFHQ 1024x1024 (stylegan2-ffhq-config-f.pkl, "
                      "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-ffhq-config-f.pkl) "
                      "converted to rosinality's layout by its convert_weight.py (g_ema, latent_avg)."),
         files=[dict(filename="stylegan2-ffhq-config-f.pt",
                     url="https://drive.google.com/uc?id=1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT",
                     sha256=None, size=None)],
         sha256_note=_NO_SHA,
         kwargs=dict(expect=dict(size=1024, style_dim=512, n_mlp=8, channel_multiplier=2))),
]

_WARNED: set = set()


def standard_channels(channel_multiplier: int = 2) -> dict:
    """rosinality's width table: 512 up to 32x32, then 256 * cm at 64 halving per octave."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm,
            512: 32 * cm, 1024: 16 * cm}


# ---------------------------------------------------------------------------- key layout
def generator_key(key: str) -> str:
    """rosinality ``g_ema`` key -> this package's key (``convs.3.x`` -> ``blocks.2.conv1.x``)."""
    for pattern, repl in _G_RULES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise ValueError(f"unexpected key {key!r} in a rosinality StyleGAN2 generator state dict")


def _noise_key(m) -> str:
    i = int(m.group(1))
    return "blocks.0.noise_0" if i == 0 else f"blocks.{(i + 1) // 2}.noise_{(i + 1) % 2}"


_G_RULES = [
    (r"^style\.(\d+)\.", r"mapping.\1."),
    (r"^input\.input$", "input.input"),
    (r"^conv1\.", "blocks.0.conv1."),
    (r"^to_rgb1\.", "blocks.0.to_rgb."),
    (r"^convs\.(\d+)\.", lambda m: f"blocks.{int(m.group(1)) // 2 + 1}.conv{int(m.group(1)) % 2}."),
    (r"^to_rgbs\.(\d+)\.", lambda m: f"blocks.{int(m.group(1)) + 1}.to_rgb."),
    (r"^noises\.noise_(\d+)$", _noise_key),
]


_INVERSE_RULES = [
    (r"^mapping\.(\d+)\.", r"style.\1."),
    (r"^input\.input$", "input.input"),
    (r"^blocks\.0\.conv1\.", "conv1."),
    (r"^blocks\.0\.to_rgb\.", "to_rgb1."),
    (r"^blocks\.0\.noise_0$", "noises.noise_0"),
    (r"^blocks\.(\d+)\.conv([01])\.",
     lambda m: f"convs.{2 * (int(m.group(1)) - 1) + int(m.group(2))}."),
    (r"^blocks\.(\d+)\.to_rgb\.", lambda m: f"to_rgbs.{int(m.group(1)) - 1}."),
    (r"^blocks\.(\d+)\.noise_([01])$",
     lambda m: f"noises.noise_{2 * int(m.group(1)) - 1 + int(m.group(2))}"),
]


def rosinality_key(key: str) -> str:
    """This package's generator key -> rosinality's (inverse of :func:`generator_key`)."""
    for pattern, repl in _INVERSE_RULES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise ValueError(f"no rosinality name for generator key {key!r}")


def _count(sd: dict, fmt: str, start: int = 0) -> int:
    n = start
    while fmt.format(n) in sd:
        n += 1
    return n - start


def _require(sd: dict, keys, what: str) -> None:
    for k in keys:
        if k not in sd:
            sample = ", ".join(list(sd)[:5])
            raise ValueError(f"not a rosinality StyleGAN2 {what} state dict: missing key {k!r} "
                             f"(found keys such as {sample})")


def infer_generator_config(sd: dict) -> dict:
    """Architecture of a rosinality ``g_ema`` state dict from its tensor names and shapes:
    dict(size, style_dim, n_mlp, channels {res: width}, blur_kernel (1-D taps))."""
    _require(sd, ["input.input", "conv1.conv.weight", "conv1.conv.modulation.weight"], "generator")
    n_up = _count(sd, "to_rgbs.{}.conv.weight")
    channels = {4: int(sd["input.input"].shape[1])}
    for j in range(n_up):
        _require(sd, [f"convs.{2 * j}.conv.weight"], "generator")
        channels[8 * 2 ** j] = int(sd[f"convs.{2 * j}.conv.weight"].shape[1])
    blur = next((kernel_taps(sd[k]) for k in ("convs.0.conv.blur.kernel", "to_rgbs.0.upsample.kernel")
                 if k in sd), [1, 3, 3, 1])
    return dict(size=4 * 2 ** n_up, style_dim=int(sd["conv1.conv.modulation.weight"].shape[1]),
                n_mlp=_count(sd, "style.{}.weight", start=1), channels=channels, blur_kernel=blur)


def infer_discriminator_config(sd: dict) -> dict:
    """Architecture of a rosinality discriminator state dict: dict(size, channels, blur_kernel)."""
    _require(sd, ["convs.0.0.weight", "final_conv.0.weight", "final_linear.1.weight"], "discriminator")
    n_down = _count(sd, "convs.{}.conv1.0.weight", start=1)
    size = 4 * 2 ** n_down
    channels = {size: int(sd["convs.0.0.weight"].shape[0])}
    for i in range(1, n_down + 1):
        channels[size // 2 ** i] = int(sd[f"convs.{i}.conv2.1.weight"].shape[0])
    channels[4] = int(sd["final_conv.0.weight"].shape[0])
    blur = kernel_taps(sd["convs.1.conv2.0.kernel"]) if "convs.1.conv2.0.kernel" in sd else [1, 3, 3, 1]
    return dict(size=size, channels=channels, blur_kernel=blur)


def _check_shapes(expected: dict, sd: dict, what: str) -> None:
    """Raise ValueError naming the first key missing, unexpected or of the wrong shape."""
    for k, shape in expected.items():
        if k not in sd:
            raise ValueError(f"{what}: missing key {k!r} (expected shape {tuple(shape)})")
        if tuple(sd[k].shape) != tuple(shape):
            raise ValueError(f"{what}: key {k!r} has shape {tuple(sd[k].shape)}, expected {tuple(shape)}")
    extra = [k for k in sd if k not in expected]
    if extra:
        raise ValueError(f"{what}: unexpected key {extra[0]!r}")


def _expected_generator_shapes(G: StyleGAN2Generator) -> dict:
    """{rosinality key: shape} of a generator's state dict."""
    return {rosinality_key(k): v.shape for k, v in G.state_dict().items()}


def _load_generator(sd: dict, lr_mlp: float) -> StyleGAN2Generator:
    cfg = infer_generator_config(sd)
    G = build_generator(cfg, lr_mlp=lr_mlp)
    _check_shapes(_expected_generator_shapes(G), sd,
                  f"generator checkpoint (inferred {cfg['size']}px, widths {cfg['channels']})")
    G.load_state_dict({generator_key(k): v for k, v in sd.items()})
    return G


def _load_discriminator(sd: dict) -> StyleGAN2Discriminator:
    cfg = infer_discriminator_config(sd)
    D = build_discriminator(cfg)
    _check_shapes({k: v.shape for k, v in D.net.state_dict().items()}, sd,
                  f"discriminator checkpoint (inferred {cfg['size']}px, widths {cfg['channels']})")
    D.net.load_state_dict(sd)
    return D


def _check_args(args, cfg: dict) -> None:
    """Cross-check a training checkpoint's ``args`` with the architecture read from tensors."""
    for name, key in (("size", "size"), ("latent", "style_dim"), ("n_mlp", "n_mlp")):
        value = getattr(args, name, None)
        if value is not None and int(value) != cfg[key]:
            raise ValueError(f"checkpoint args.{name}={value} but its tensors say {key}={cfg[key]}")
    cm = getattr(args, "channel_multiplier", None)
    big = {r: c for r, c in cfg["channels"].items() if r >= 64}
    if cm is not None and big and any(standard_channels(int(cm))[r] != c for r, c in big.items()):
        warnings.warn(f"checkpoint args.channel_multiplier={cm} does not match its tensor widths "
                      f"{cfg['channels']}; using the widths from the tensors", stacklevel=3)


def _check_expected(g_sd: dict, d_sd: Optional[dict], expect: dict, where: str) -> None:
    """Compare keys / shapes with a named architecture (used for registry files with no sha256)."""
    cfg = dict(size=expect["size"], style_dim=expect["style_dim"], n_mlp=expect["n_mlp"],
               channels=expect.get("channels") or standard_channels(expect.get("channel_multiplier", 2)),
               blur_kernel=[1, 3, 3, 1])
    with torch.device("meta"):
        G = build_generator(cfg)
        D = build_discriminator(cfg) if d_sd is not None else None
    expected = _expected_generator_shapes(G)
    _check_shapes(expected, g_sd, f"{where} (generator vs expected {expect})")
    if D is not None:
        _check_shapes({k: v.shape for k, v in D.net.state_dict().items()}, d_sd,
                      f"{where} (discriminator vs expected {expect})")


def from_state_dicts(g_sd: dict, d_sd: Optional[dict] = None, latent_avg=None, args=None,
                     lr_mlp: float = 0.01, device=None) -> StyleGAN2Generator:
    """A frozen generator (with its discriminator when ``d_sd`` is given) from rosinality
    state dicts; ``latent_avg`` (style_dim,) becomes the truncation mean."""
    G = _load_generator(g_sd, lr_mlp)
    if args is not None:
        _check_args(args, infer_generator_config(g_sd))
    if latent_avg is not None:
        G._buffers["w_avg"] = torch.as_tensor(latent_avg).reshape(-1).float().clone()
        G.w_avg_source = "checkpoint"
    D = _load_discriminator(d_sd) if d_sd is not None else None
    G = finalize(G, D)
    return G.to(device) if device is not None else G


def _is_zip(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def _pickle_error(path: Path) -> ValueError:
    return ValueError(
        f"{path} is a Python pickle that stores code (an NVlabs .pkl, or a checkpoint with "
        f"objects other than tensors and argparse.Namespace). Loading it would execute code from "
        f"the file, so it is refused by default. If you trust the file, pass trust_pickle=True "
        f"(NVlabs pickles also need NVlabs' dnnlib and torch_utils on sys.path), or better, "
        f"convert it once to a rosinality state dict (see the priors.stylegan2 docstring).")


def load_checkpoint_dict(path, trust_pickle: bool = False) -> dict:
    """The checkpoint as a dict; ``weights_only=True`` with ``argparse.Namespace`` allow-listed,
    or (only with ``trust_pickle=True``, warning) full unpickling."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"StyleGAN2 checkpoint not found: {path}")
    if _is_zip(path) or path.suffix != ".pkl":
        try:
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            if not trust_pickle:
                raise _pickle_error(path) from err
    elif not trust_pickle:
        raise _pickle_error(path)
    warnings.warn(f"trust_pickle=True: unpickling {path} executes code stored in the file", stacklevel=3)
    if _is_zip(path):
        return torch.load(path, map_location="cpu", weights_only=False)  # explicit user opt-in
    with open(path, "rb") as f:
        return pickle.load(f)  # explicit user opt-in  # noqa: S301


def _state_dict_of(obj):
    return obj.state_dict() if hasattr(obj, "state_dict") else obj


def from_checkpoint(path, device=None, *, trust_pickle: bool = False, expect: Optional[dict] = None,
                    lr_mlp: float = 0.01) -> StyleGAN2Generator:
    """Load a rosinality StyleGAN2 checkpoint as a frozen :class:`StyleGAN2Generator`.

    Args:
        path: ``.pt`` with ``g_ema`` (and optionally ``d``, ``latent_avg``, ``args``), or a bare
            generator state dict.
        trust_pickle: allow full unpickling (runs code from the file); needed for NVlabs
            ``.pkl`` files, which must then hold rosinality-layout modules or state dicts.
        expect: dict(size, style_dim, n_mlp, channel_multiplier or channels {res: width}):
            check keys and shapes against this architecture first (registry files without a
            sha256); raises naming the first mismatch, else warns once per file.
        lr_mlp: mapping learning-rate multiplier used in training (rosinality default 0.01).
    """
    ckpt = load_checkpoint_dict(path, trust_pickle=trust_pickle)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    if "G_ema" in ckpt:  # NVlabs stylegan2-ada-pytorch modules (trusted pickle) or state dicts
        ckpt = nvlabs_to_rosinality(_state_dict_of(ckpt["G_ema"]),
                                    _state_dict_of(ckpt["D"]) if "D" in ckpt else None)
    if "g_ema" not in ckpt and "input.input" not in ckpt:
        raise ValueError(f"{path}: no 'g_ema' (rosinality) or 'G_ema' (NVlabs) entry and not a "
                         f"generator state dict; top-level keys {sorted(map(str, ckpt))[:8]}")
    g_sd = _state_dict_of(ckpt.get("g_ema", ckpt))
    d_sd = _state_dict_of(ckpt["d"]) if "d" in ckpt else None
    if expect is not None:
        _check_expected(g_sd, d_sd, expect, str(path))
        if str(path) not in _WARNED:
            _WARNED.add(str(path))
            warnings.warn(f"{path}: no sha256 to verify; checked keys and tensor shapes against "
                          f"{expect} instead", stacklevel=2)
    return from_state_dicts(g_sd, d_sd, latent_avg=ckpt.get("latent_avg"), args=ckpt.get("args"),
                            lr_mlp=lr_mlp, device=device)


@torch.no_grad()
def init_random_(module: torch.nn.Module, seed: int = 0, scale: float = 0.2) -> torch.nn.Module:
    """Seeded random init in place, as rosinality's (weights N(0, 1), mapping weights
    N(0, 1) / lr_mul), with biases and noise strengths N(0, scale^2) (modulation biases
    1 + N(0, scale^2)) so every term is exercised. Returns ``module``."""
    gen = torch.Generator().manual_seed(int(seed))
    lr_mul = {f"{n}.weight": m.lr_mul for n, m in module.named_modules() if isinstance(m, EqualLinear)}
    for name, p in module.named_parameters():
        noise = torch.randn(p.shape, generator=gen)
        if name.endswith("bias") or name.endswith("noise.weight"):
            p.copy_(scale * noise + (1.0 if "modulation" in name else 0.0))
        else:
            p.copy_(noise / lr_mul.get(name, 1.0))
    return module


def tiny(seed: int = 0, with_discriminator: bool = True) -> StyleGAN2Generator:
    """A 32x32 random-weight StyleGAN2 (w 32, 2 mapping layers, widths 32/32/24/16) for tests."""
    cfg = dict(size=32, style_dim=32, n_mlp=2, channels={4: 32, 8: 32, 16: 24, 32: 16},
               blur_kernel=[1, 3, 3, 1])
    G = init_random_(build_generator(cfg), seed)
    G.set_noise_seed(seed)
    D = init_random_(build_discriminator(cfg), seed + 1) if with_discriminator else None
    return finalize(G, D)
