"""Convert NVlabs stylegan2-ada-pytorch StyleGAN2 state dicts to rosinality's layout.

NVlabs' ``.pkl`` files hold pickled Python code; their *state dicts* are plain tensors. This
module renames and reshapes those tensors (no code from the pickle runs here), so a model
saved once as ``torch.save({"G_ema": G.state_dict(), "D": D.state_dict()}, "model.pt")`` (in a
trusted session with NVlabs' ``dnnlib`` and ``torch_utils`` importable) loads anywhere with
``priors.stylegan2.from_checkpoint("model.pt")`` under ``weights_only=True``.

Supported: unconditional StyleGAN2 generators (``architecture="skip"``, the default) and
residual discriminators (``architecture="resnet"``, the default), any resolution, widths and
mapping depth. Not supported (a ``ValueError`` names the first unconverted key): conditional
models (``mapping.embed``), other architectures, StyleGAN3. NVlabs networks trained with
``conv_clamp=256`` clip activations to +-256; this implementation does not clip, so outputs
differ only where activations exceed that bound. Their ``mapping.w_avg`` becomes
``latent_avg`` (the truncation mean).
"""
from __future__ import annotations

import re
from typing import Optional

import torch

from .stylegan2_layers import kernel_taps, make_kernel

__all__ = ["nvlabs_to_rosinality", "is_nvlabs_state_dict"]


def is_nvlabs_state_dict(sd: dict) -> bool:
    """True for a stylegan2-ada-pytorch generator state dict (``synthesis.b4.const``...)."""
    return "synthesis.b4.const" in sd


def _resolutions(sd: dict, prefix: str) -> list:
    found = {int(m.group(1)) for k in sd for m in [re.match(prefix + r"b(\d+)\.", k)] if m}
    return sorted(found)


def _taps(sd: dict, key: str) -> list:
    return kernel_taps(sd[key]) if key in sd else [1, 3, 3, 1]


class _Mover:
    """Copies tensors from ``src`` to ``out`` under new names, remembering what was used."""

    def __init__(self, src: dict, what: str):
        self.src, self.out, self.used, self.what = src, {}, set(), what

    def take(self, key: str) -> torch.Tensor:
        if key not in self.src:
            raise ValueError(f"NVlabs {self.what} state dict: missing key {key!r}")
        self.used.add(key)
        return self.src[key]

    def put(self, key: str, value: torch.Tensor) -> None:
        self.out[key] = value.detach().clone().float()

    def finish(self) -> dict:
        left = [k for k in self.src if k not in self.used and not k.endswith("resample_filter")]
        if left:
            raise ValueError(f"NVlabs {self.what} state dict: key {left[0]!r} has no rosinality "
                             f"equivalent (conditional or non-default architecture?)")
        return self.out


def _styled(m: _Mover, src: str, dst: str, noise_index: int, up_kernel=None) -> None:
    m.put(f"{dst}.conv.weight", m.take(f"{src}.weight")[None])
    m.put(f"{dst}.conv.modulation.weight", m.take(f"{src}.affine.weight"))
    m.put(f"{dst}.conv.modulation.bias", m.take(f"{src}.affine.bias"))
    m.put(f"{dst}.noise.weight", m.take(f"{src}.noise_strength").reshape(1))
    m.put(f"{dst}.activate.bias", m.take(f"{src}.bias"))
    m.put(f"noises.noise_{noise_index}", m.take(f"{src}.noise_const")[None, None])
    if up_kernel is not None:
        m.put(f"{dst}.conv.blur.kernel", up_kernel)


def _to_rgb(m: _Mover, src: str, dst: str, up_kernel=None) -> None:
    m.put(f"{dst}.conv.weight", m.take(f"{src}.weight")[None])
    m.put(f"{dst}.conv.modulation.weight", m.take(f"{src}.affine.weight"))
    m.put(f"{dst}.conv.modulation.bias", m.take(f"{src}.affine.bias"))
    m.put(f"{dst}.bias", m.take(f"{src}.bias").reshape(1, -1, 1, 1))
    if up_kernel is not None:
        m.put(f"{dst}.upsample.kernel", up_kernel)


def _generator(sd: dict):
    m = _Mover(sd, "generator")
    n_fc = len({k.split(".")[1] for k in sd if re.match(r"mapping\.fc\d+\.weight$", k)})
    for i in range(n_fc):
        m.put(f"style.{i + 1}.weight", m.take(f"mapping.fc{i}.weight"))
        m.put(f"style.{i + 1}.bias", m.take(f"mapping.fc{i}.bias"))
    latent_avg = m.take("mapping.w_avg").detach().clone().float() if "mapping.w_avg" in sd else None
    res = _resolutions(sd, r"synthesis\.")
    up = make_kernel(_taps(sd, f"synthesis.b{res[1]}.conv0.resample_filter") if len(res) > 1 else [1]) * 4
    m.put("input.input", m.take("synthesis.b4.const")[None])
    _styled(m, "synthesis.b4.conv1", "conv1", 0)
    _to_rgb(m, "synthesis.b4.torgb", "to_rgb1")
    for j, r in enumerate(res[1:]):
        _styled(m, f"synthesis.b{r}.conv0", f"convs.{2 * j}", 2 * j + 1, up_kernel=up)
        _styled(m, f"synthesis.b{r}.conv1", f"convs.{2 * j + 1}", 2 * j + 2)
        _to_rgb(m, f"synthesis.b{r}.torgb", f"to_rgbs.{j}", up_kernel=up)
    return m.finish(), latent_avg


def _conv(m: _Mover, src: str, dst: str, conv_index: int = 0, act_index: Optional[int] = 1,
          bias: bool = True) -> None:
    m.put(f"{dst}.{conv_index}.weight", m.take(f"{src}.weight"))
    if bias:
        m.put(f"{dst}.{act_index}.bias", m.take(f"{src}.bias"))


def _discriminator(sd: dict) -> dict:
    m = _Mover(sd, "discriminator")
    res = sorted(_resolutions(sd, ""), reverse=True)
    if not res or res[-1] != 4:
        raise ValueError("NVlabs discriminator state dict: no 'b4.' epilogue keys")
    down = make_kernel(_taps(sd, f"b{res[0]}.conv1.resample_filter"))
    _conv(m, f"b{res[0]}.fromrgb", "convs.0")
    for i, r in enumerate(res[:-1], start=1):
        _conv(m, f"b{r}.conv0", f"convs.{i}.conv1")
        _conv(m, f"b{r}.conv1", f"convs.{i}.conv2", conv_index=1, act_index=2)
        m.put(f"convs.{i}.conv2.0.kernel", down)
        _conv(m, f"b{r}.skip", f"convs.{i}.skip", conv_index=1, bias=False)
        m.put(f"convs.{i}.skip.0.kernel", down)
    _conv(m, "b4.conv", "final_conv")
    for src, dst in (("b4.fc", "final_linear.0"), ("b4.out", "final_linear.1")):
        m.put(f"{dst}.weight", m.take(f"{src}.weight"))
        m.put(f"{dst}.bias", m.take(f"{src}.bias"))
    return m.finish()


def nvlabs_to_rosinality(g_sd: dict, d_sd: Optional[dict] = None) -> dict:
    """NVlabs ``G_ema`` (and ``D``) state dicts -> a rosinality checkpoint dict
    ``{"g_ema": ..., "latent_avg": (w_dim,) or absent, "d": ... when d_sd is given}``."""
    if not is_nvlabs_state_dict(g_sd):
        raise ValueError("not an NVlabs stylegan2-ada-pytorch generator state dict "
                         "(missing 'synthesis.b4.const')")
    g, latent_avg = _generator(g_sd)
    ckpt = {"g_ema": g}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    if d_sd is not None:
        ckpt["d"] = _discriminator(d_sd)
    return ckpt
