"""StyleGAN2 building blocks in plain PyTorch, with rosinality ``stylegan2-pytorch`` parameter names.

Everything here is written from the StyleGAN2 paper's equations (equalized learning rate,
weight modulation / demodulation, FIR up/down-sampling, minibatch standard deviation) using
only ``torch.nn.functional``: no custom CUDA extension, and no in-place updates, so every
module works under ``torch.func.functional_call`` and ``torch.func.vmap``.

Weights are created as zeros (no draw from the global RNG): they are meant to be loaded from
a checkpoint, or initialized from a seed with :func:`priors.stylegan2.init_random_`.

Submodule and parameter names (``conv.weight``, ``conv.modulation.bias``, ``noise.weight``,
``activate.bias``, ``blur.kernel``...) match rosinality's checkpoints, so a checkpoint's
tensors load with a plain key renaming (see :mod:`priors.stylegan2`).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


def make_kernel(k: Sequence[float]) -> torch.Tensor:
    """A separable 2-D FIR kernel ``outer(k, k) / sum`` (float32, sums to 1) from 1-D taps."""
    k = torch.as_tensor(k, dtype=torch.float32, device="cpu")  # CPU even under a meta device context
    if k.dim() == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def kernel_taps(kernel2d: torch.Tensor) -> list:
    """The normalized 1-D taps of a separable 2-D kernel (inverse of :func:`make_kernel`)."""
    k = kernel2d.detach().float().cpu()
    return (k.sum(1) / k.sum()).tolist()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: Tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR-filter (true convolution), then subsample.

    ``x`` (B, C, H, W) -> (B, C, (H*up + pad0 + pad1 - kh) // down + 1, same for W); the same
    ``(pad0, pad1)`` applies to both axes and both must be >= 0.
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    p0, p1 = pad
    if p0 < 0 or p1 < 0:
        raise ValueError(f"upfirdn2d pads must be >= 0, got {pad}")
    x = F.pad(x, [p0, p1, p0, p1])
    weight = kernel.flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, stride=down, groups=c)


class PixelNorm(nn.Module):
    """Normalize each latent to unit root-mean-square: (B, D) -> (B, D)."""

    def forward(self, x):
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class Blur(nn.Module):
    """FIR low-pass filter (buffer ``kernel``) with fixed padding; (B, C, H, W) -> (B, C, H', W')."""

    def __init__(self, kernel: Sequence[float], pad: Tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2)
        self.pad = tuple(pad)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling (the RGB skip path): (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        k = make_kernel(kernel) * factor ** 2
        self.register_buffer("kernel", k)
        p = k.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


def leaky_relu_bias(x: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``sqrt(2) * leaky_relu(x + bias, 0.2)`` with ``bias`` (C,) broadcast over dim 1."""
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, 0.2) * SQRT2


class FusedLeakyReLU(nn.Module):
    """Bias + scaled leaky ReLU (parameter ``bias`` (C,), or none)."""

    def __init__(self, channels: int, bias: bool = True):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

    def forward(self, x):
        return leaky_relu_bias(x, self.bias)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weight (out, in) scaled by lr_mul / sqrt(in)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x):
        out = F.linear(x, self.weight * self.scale)
        out = out + self.bias * self.lr_mul
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activation else out


class EqualConv2d(nn.Module):
    """Conv2d with equalized learning rate: weight (out, in, k, k) scaled by 1 / sqrt(in k^2)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1 / math.sqrt(in_ch * kernel_size ** 2)
        self.stride, self.padding = stride, padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride,
                        padding=self.padding)


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution: (B, in, H, W), style (B, D) -> (B, out, H', W').

    The style scales the input channels and (``demodulate``) each output channel is
    normalized by the norm of its modulated filter; computed as input scaling + one shared
    convolution + output scaling, which equals the per-sample grouped convolution exactly.
    ``upsample`` doubles H and W (transposed stride-2 conv, then FIR blur).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, kernel_size
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(in_ch * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.zeros(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)

    def forward(self, x, style):
        b = x.shape[0]
        s = self.modulation(style)                                   # (B, in)
        weight = self.scale * self.weight.squeeze(0)                 # (out, in, k, k)
        x = x * s.reshape(b, self.in_ch, 1, 1)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sum_{i,k} (w_oik s_i)^2 = (s^2) @ (sum_k w_oik^2)^T
            norm2 = torch.matmul(s.square(), weight.square().sum((2, 3)).transpose(0, 1))
            out = out * torch.rsqrt(norm2 + 1e-8).reshape(b, self.out_ch, 1, 1)
        return out


class NoiseInjection(nn.Module):
    """``x + weight * noise`` with a learned scalar ``weight`` (1,); noise (1|B, 1, H, W)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise):
        return x + self.weight * noise


class StyledConv(nn.Module):
    """Modulated conv + noise + bias + scaled leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x, style, noise):
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB + bias, added to the upsampled skip image."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    """The learned 4x4 input ``input`` (1, C, 4, 4), expanded to the batch."""

    def __init__(self, channels: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.zeros(1, channels, size, size))

    def forward(self, batch: int):
        return self.input.expand(batch, -1, -1, -1)


# ---------------------------------------------------------------------------- discriminator
class ConvLayer(nn.Sequential):
    """[blur] + equalized conv (stride 2 when ``downsample``) + [bias + scaled leaky ReLU]."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, downsample: bool = False,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True,
                 activate: bool = True):
        layers = []
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_ch, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual down block: (B, in, H, W) -> (B, out, H/2, W/2)."""

    def __init__(self, in_ch: int, out_ch: int, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_ch, out_ch, 1, downsample=True, blur_kernel=blur_kernel,
                              activate=False, bias=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append the mean (over C, H, W) of the per-group feature std as one channel.

    The group is ``min(B, group_size)`` as in the reference; when that does not divide B
    (where the reference fails) the largest divisor of B below it is used.
    """
    b, c, h, w = x.shape
    group = min(b, group_size)
    while b % group:
        group -= 1
    y = x.reshape(group, -1, 1, c, h, w)
    y = torch.sqrt(y.var(0, unbiased=False) + 1e-8)
    y = y.mean([2, 3, 4], keepdim=True).squeeze(2)                  # (B/group, 1, 1, 1)
    y = y.repeat(group, 1, h, w)
    return torch.cat([x, y], 1)


class DiscriminatorNet(nn.Module):
    """The residual StyleGAN2 discriminator on native-range images (B, 3, S, S) in [-1, 1].

    ``channels`` maps each resolution S, S/2, ..., 4 to its width.
    """

    def __init__(self, size: int, channels: dict, blur_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        convs = [ConvLayer(3, channels[size], 1)]
        in_ch = channels[size]
        for i in range(int(math.log2(size)), 2, -1):
            out_ch = channels[2 ** (i - 1)]
            convs.append(ResBlock(in_ch, out_ch, blur_kernel))
            in_ch = out_ch
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(in_ch + 1, channels[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 16, channels[4], activation=True),
            EqualLinear(channels[4], 1))

    def features(self, x) -> list:
        """Activations after each ResBlock and after the final conv."""
        h = self.convs[0](x)
        feats = []
        for block in list(self.convs)[1:]:
            h = block(h)
            feats.append(h)
        feats.append(self.final_conv(minibatch_stddev(h)))
        return feats

    def forward(self, x):
        h = self.features(x)[-1]
        return self.final_linear(h.reshape(h.shape[0], -1)).reshape(-1)
