"""Layers shared by the two BigGAN checkpoint layouts (:mod:`priors.biggan`, :mod:`priors.biggan_pytorch`).

Both layouts spectrally normalise their weights, but differently in evaluation mode:

* ``"uv"`` (``torch.nn.utils.spectral_norm``, used by pytorch-pretrained-biggan): parameters
  ``weight_orig`` and buffers ``weight_u`` ``(out,)``, ``weight_v`` ``(in*k*k,)``; the weight is
  ``weight_orig / (u . W v)`` with the stored ``u`` and ``v``.
* ``"power"`` (BigGAN-PyTorch ``layers.SN``): parameter ``weight``, buffers ``u0`` ``(1, out)`` and
  ``sv0`` ``(1,)`` (a logged value, unused); one power-iteration step from the stored ``u0``
  (without gradient) gives ``v``, ``u'`` and ``sigma = v W^T u'^T``; the weight is ``W / sigma``.

Neither updates a buffer in forward, so the layers work under ``torch.func.functional_call`` and
``torch.func.vmap`` over stacked parameters, and gradients reach the weights as in the references.
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SNLinear", "SNConv2d", "sn_weight", "class_vector", "attention", "check_state_dict",
           "randomize_", "zeros_module"]

_STYLES = ("uv", "power")


def _sn_uv(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    w_mat = weight.reshape(weight.shape[0], -1)
    sigma = torch.dot(u, torch.mv(w_mat, v))
    return weight / sigma


def _sn_power(weight: torch.Tensor, u: torch.Tensor, eps: float) -> torch.Tensor:
    w_mat = weight.reshape(weight.shape[0], -1)
    w_const, u = w_mat.detach(), u.detach()
    v = F.normalize(torch.matmul(u, w_const), eps=eps)
    u = F.normalize(torch.matmul(v, w_const.t()), eps=eps)
    sigma = torch.squeeze(torch.matmul(torch.matmul(v, w_mat.t()), u.t()))
    return weight / sigma


class _SpectralNorm(nn.Module):
    """Holds a spectrally normalised weight of shape ``weight_shape`` in one of the two layouts."""

    def _setup(self, style: str, weight_shape, bias: bool, eps: float) -> None:
        if style not in _STYLES:
            raise ValueError(f"spectral-norm style must be one of {_STYLES}, got {style!r}")
        self.style, self.eps = style, float(eps)
        out_features, fan_in = weight_shape[0], math.prod(weight_shape[1:])
        name = "weight_orig" if style == "uv" else "weight"
        self.register_parameter(name, nn.Parameter(torch.zeros(weight_shape)))  # loaded or randomize_()d
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        if style == "uv":
            self.register_buffer("weight_u", torch.ones(out_features) / out_features ** 0.5)
            self.register_buffer("weight_v", torch.ones(fan_in) / fan_in ** 0.5)
        else:
            self.register_buffer("u0", torch.ones(1, out_features))
            self.register_buffer("sv0", torch.ones(1))

    def out_dim(self) -> int:
        return (self.weight_orig if self.style == "uv" else self.weight).shape[0]

    def sn_weight(self) -> torch.Tensor:
        """The normalised weight (same shape as the stored one)."""
        if self.style == "uv":
            return _sn_uv(self.weight_orig, self.weight_u, self.weight_v)
        return _sn_power(self.weight, self.u0, self.eps)


def sn_weight(module: nn.Module) -> torch.Tensor:
    """The spectrally normalised weight of an :class:`SNLinear` or :class:`SNConv2d`."""
    return module.sn_weight()


class SNLinear(_SpectralNorm):
    """Spectrally normalised linear layer: ``(..., in_features) -> (..., out_features)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, style: str = "uv",
                 eps: float = 1e-12) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._setup(style, (out_features, in_features), bias, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.sn_weight(), self.bias)


class SNConv2d(_SpectralNorm):
    """Spectrally normalised 2-D convolution, stride 1: ``(B, in, H, W) -> (B, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, style: str = "uv", eps: float = 1e-12) -> None:
        super().__init__()
        self.padding = padding
        self._setup(style, (out_channels, in_channels, kernel_size, kernel_size), bias, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.sn_weight(), self.bias, padding=self.padding)


def class_vector(c, n_classes: int, batch: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Class input as a ``(B, n_classes)`` float vector.

    ``c``: integer ids ``(B,)`` (turned into one-hot rows) or a float class vector
    ``(B, n_classes)``, one-hot or soft (used as given).
    """
    if not isinstance(c, torch.Tensor):
        c = torch.as_tensor(c)
    if not c.is_floating_point():
        if c.dim() != 1 or c.shape[0] != batch:
            raise ValueError(f"integer class ids must have shape ({batch},), got {tuple(c.shape)}")
        c = c.to(device=device)
        if _is_plain(c) and c.numel() and (int(c.min()) < 0 or int(c.max()) >= n_classes):
            raise ValueError(f"class ids must lie in 0..{n_classes - 1}, got {c.tolist()}")
        # a comparison rather than F.one_hot, which checks ranges with .item() (breaks vmap/grad)
        return (c[:, None] == torch.arange(n_classes, device=device)).to(dtype)
    if c.dim() != 2 or tuple(c.shape) != (batch, n_classes):
        raise ValueError(f"a class vector must have shape ({batch}, {n_classes}), got {tuple(c.shape)}")
    return c.to(device=device, dtype=dtype)


def zeros_module(cls, *args, **kwargs) -> nn.Module:
    """``cls(*args, **kwargs)`` (e.g. ``nn.Linear``) with zero tensors, never touching the global RNG."""
    module = nn.utils.skip_init(cls, *args, **kwargs)
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            t.zero_()
    return module


def _is_plain(t: torch.Tensor) -> bool:
    """False inside torch.func transforms (vmap/grad), where values cannot be inspected."""
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return wrapped is None or not wrapped(t)


def attention(x: torch.Tensor, theta: nn.Module, phi: nn.Module, g: nn.Module, o: nn.Module,
              gamma: torch.Tensor) -> torch.Tensor:
    """SAGAN self-attention as both BigGAN references compute it: ``(B, C, H, W) -> same``."""
    _, ch, h, w = x.shape
    t = theta(x).reshape(-1, ch // 8, h * w)
    p = F.max_pool2d(phi(x), 2).reshape(-1, ch // 8, h * w // 4)
    beta = F.softmax(torch.bmm(t.transpose(1, 2), p), dim=-1)
    gv = F.max_pool2d(g(x), 2).reshape(-1, ch // 2, h * w // 4)
    out = o(torch.bmm(gv, beta.transpose(1, 2)).reshape(-1, ch // 2, h, w))
    return x + gamma * out


def check_state_dict(state: dict, expected: dict, what: str) -> None:
    """Raise ``ValueError`` naming the first key missing from ``state``, unexpected in it, or
    whose shape differs from ``expected`` (``{key: shape}``)."""
    for key, shape in expected.items():
        if key not in state:
            raise ValueError(f"{what}: missing tensor {key!r} (expected shape {tuple(shape)})")
        got = tuple(state[key].shape)
        if got != tuple(shape):
            raise ValueError(f"{what}: tensor {key!r} has shape {got}, expected {tuple(shape)}")
    extra = [k for k in state if k not in expected]
    if extra:
        raise ValueError(f"{what}: unexpected tensor {extra[0]!r} (shape {tuple(state[extra[0]].shape)}); "
                         f"{len(extra)} unexpected in all")


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Fill ``module``'s tensors with seeded random values that give finite, non-trivial outputs
    (for ``tiny()`` test models). Statistics buffers named ``*var*`` stay positive; spectral-norm
    ``u``/``v`` buffers get one power-iteration step, as the references' converters do."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("weight_u", "weight_v", "u0", "sv0"):
                continue
            r = torch.randn(t.shape, generator=gen, dtype=t.dtype)
            if "var" in leaf:
                t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) + 0.5)
            elif leaf == "gamma":
                t.fill_(0.5)
            elif "mean" in leaf or leaf == "bias":
                t.copy_(0.1 * r)
            elif t.dim() >= 2:
                t.copy_(r / math.prod(t.shape[1:]) ** 0.5)
            else:
                t.copy_(1 + 0.1 * r)
        for m in module.modules():
            if isinstance(m, _SpectralNorm):
                _power_step_(m, gen)
    return module


def _power_step_(m: "_SpectralNorm", gen: torch.Generator) -> None:
    w = (m.weight_orig if m.style == "uv" else m.weight).reshape(m.out_dim(), -1)
    u = F.normalize(torch.randn(w.shape[0], generator=gen, dtype=w.dtype), dim=0)
    v = F.normalize(torch.mv(w.t(), u), dim=0)
    u = F.normalize(torch.mv(w, v), dim=0)
    if m.style == "uv":
        m.weight_u.copy_(u)
        m.weight_v.copy_(v)
    else:
        m.u0.copy_(u[None])
