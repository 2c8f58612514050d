"""Your photo at its own resolution: the prior's problem in, a full-resolution image out.

A GAN prior makes images of one size (``R x R``, e.g. 64x64); a photo has its own (4000x3000,
37x53...). :func:`restore_photo` restores an observation of any size in three steps, each also a
public function:

1. :func:`to_prior`: the observation (or one :class:`Region` of it, such as a face) resized so
   that its longer side fits the prior, centred on the prior's square canvas; the margins of a
   non-square region are unobserved (a ``Mask`` composed after the operator). Returns ``(y_p,
   op_p, geometry)`` for :func:`restore.solve`.
2. the solve, at the prior's resolution.
3. :func:`compose`: the prior's image, cut from its canvas and resized (bicubic) to the region's
   full-resolution size ``x_up``, composed with the observation so that nothing observed is
   resampled away (:mod:`restore.blend`):

   * inpaint (``Mask``): every observed pixel is kept; holes get ``x_up`` plus the observed
     residual spread into them (no seam at hole borders);
   * colorize (``Grayscale``): the input's luma, the prior's chroma: ``Grayscale(out) == y``;
   * superres (``Downsample``): ``x_up`` projected onto ``{x : D x = y}`` (``D`` the operator):
     ``Downsample(out) == y`` to float precision;

   then the region is pasted into the whole photo with a feathered seam; pixels outside it are
   unchanged: the input's (inpaint, colorize as gray) or the consistent bicubic answer (superres).

Coordinates: a region ``Region(x, y, w, h)`` is in the observation's pixels (for superres the
low-resolution input's); the output has the photo's size (superres: ``factor`` times the input).

Example::

    >>> import torch, priors
    >>> from torch import nn
    >>> from operators import Grayscale
    >>> G = priors.wrap(nn.Sequential(nn.Linear(8, 3 * 16 * 16), nn.Sigmoid(), nn.Unflatten(1, (3, 16, 16))), (8,))
    >>> gray = torch.rand(1, 1, 30, 45)
    >>> out = restore_photo(gray, Grayscale(), G, method="latent", preset="fast", steps=2, progress=False,
    ...                     warn=lambda msg: None)
    >>> out.image.shape, bool((Grayscale()(out.image) - gray).abs().max() < 1e-5)
    (torch.Size([1, 3, 30, 45]), True)
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

import torch

from operators import Downsample, Grayscale, Mask

from .blend import feather_weight, fill_holes, keep_luma, make_consistent, resize, resize_masked

__all__ = ["Region", "Geometry", "PhotoResult", "to_prior", "compose", "paste", "restore_photo",
           "detail_warning", "photo_task", "DETAIL_LIMIT"]

DETAIL_LIMIT = 2.0  # the prior's image upsampled more than this: one warning says the detail is limited
_TASKS = {Mask: "inpaint", Downsample: "superres", Grayscale: "colorize"}


@dataclass(frozen=True)
class Region:
    """A rectangle of a photo: left ``x``, top ``y``, width ``w``, height ``h`` in pixels."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> "Region":
        """``"X,Y,W,H"`` (integers, ``W, H >= 1``) -> Region; ``ValueError`` otherwise."""
        if not re.fullmatch(r"\s*\d+\s*,\s*\d+\s*,\s*\d+\s*,\s*\d+\s*", str(text)):
            raise ValueError(f"a region is X,Y,W,H (four non-negative integers, e.g. 120,40,256,256), got {text!r}")
        region = cls(*(int(v) for v in str(text).split(",")))
        if region.w < 1 or region.h < 1:
            raise ValueError(f"a region needs width and height >= 1, got {text!r}")
        return region

    def check(self, height: int, width: int, what: str = "the image") -> "Region":
        """``ValueError`` unless the region lies inside a ``height x width`` image; returns self."""
        if self.w < 1 or self.h < 1 or self.x < 0 or self.y < 0 or self.x + self.w > width or self.y + self.h > height:
            raise ValueError(f"region {self.x},{self.y},{self.w},{self.h} (X,Y,W,H) does not fit inside {what} "
                             f"of {width}x{height} pixels: need X + W <= {width} and Y + H <= {height}")
        return self

    def scaled(self, factor: int) -> "Region":
        return Region(self.x * factor, self.y * factor, self.w * factor, self.h * factor)

    def crop(self, t: torch.Tensor) -> torch.Tensor:
        """``(..., H, W) -> (..., h, w)``."""
        return t[..., self.y:self.y + self.h, self.x:self.x + self.w]


@dataclass(frozen=True)
class Geometry:
    """How a region of the photo maps onto the prior's canvas.

    task: "inpaint" | "superres" | "colorize". region: in observation pixels. factor: output pixels
    per observation pixel (superres factor, else 1). resolution: the prior's ``R``. box: where the
    region's content lies on the prior's ``R x R`` output canvas. photo: ``(H, W)`` of the whole
    observation.
    """

    task: str
    region: Region
    factor: int
    resolution: int
    box: Region
    photo: Tuple[int, int]

    @property
    def out_region(self) -> Region:
        """The region in output pixels."""
        return self.region.scaled(self.factor)

    @property
    def out_size(self) -> Tuple[int, int]:
        """``(H, W)`` of the whole output."""
        return self.photo[0] * self.factor, self.photo[1] * self.factor

    @property
    def upscale(self) -> float:
        """Output pixels per prior pixel (> 1: the prior's image is enlarged)."""
        r = self.out_region
        return max(r.h / self.box.h, r.w / self.box.w)


@dataclass
class PhotoResult:
    """The outcome of :func:`restore_photo`.

    image: ``(B, C, H_out, W_out)`` the full-resolution restoration. prior_image: ``(B, C, R, R)``
    the solver's image on the prior's canvas. geometry: the :class:`Geometry`. result: the
    :class:`restore.Result` of the solve at the prior's resolution.
    """

    image: torch.Tensor
    prior_image: torch.Tensor
    geometry: Geometry
    result: object


def photo_task(operator) -> str:
    """"inpaint" | "superres" | "colorize" for a ``Mask`` | ``Downsample`` | ``Grayscale``; else ``TypeError``."""
    for cls, name in _TASKS.items():
        if isinstance(operator, cls):
            return name
    raise TypeError(f"full-resolution restoration takes a Mask, Downsample or Grayscale operator, "
                    f"got {type(operator).__name__} (use restore.solve at the prior's resolution for others)")


def _check(y: torch.Tensor, operator, resolution: int, channels: Optional[int]) -> str:
    task = photo_task(operator)
    if not isinstance(y, torch.Tensor) or y.dim() != 4 or not y.is_floating_point():
        raise ValueError(f"y must be a float tensor (B, C, H, W), got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if task == "colorize" and y.shape[1] != 1:
        raise ValueError(f"colorize observes a gray image (B, 1, H, W), got {tuple(y.shape)}")
    if task == "colorize" and channels not in (None, 3):
        raise ValueError(f"colorize needs a colour (3-channel) prior, this one has {channels} channel(s)")
    if task != "colorize" and channels is not None and y.shape[1] != channels:
        raise ValueError(f"y has {y.shape[1]} channel(s), the prior makes {channels}")
    if task == "inpaint" and tuple(operator.mask.shape[-2:]) != tuple(y.shape[-2:]):
        raise ValueError(f"the mask is {tuple(operator.mask.shape[-2:])} (H, W), the image {tuple(y.shape[-2:])}")
    if task == "superres" and resolution % operator.factor:
        raise ValueError(f"the superres factor {operator.factor} does not divide the prior's resolution {resolution}")
    return task


def _geometry(task: str, region: Region, factor: int, resolution: int, photo: Tuple[int, int]) -> Geometry:
    """Fit the region's longer side to the canvas (``R / factor`` observation pixels), centred."""
    n = resolution // factor
    scale = n / max(region.h, region.w)
    hc, wc = (min(n, max(1, round(s * scale))) for s in (region.h, region.w))
    top, left = (n - hc) // 2, (n - wc) // 2
    return Geometry(task, region, factor, resolution, Region(left, top, wc, hc).scaled(factor), photo)


def to_prior(y: torch.Tensor, operator, resolution: int, region: Optional[Region] = None, *,
             channels: Optional[int] = None):
    """The prior-resolution problem of a full-resolution observation.

    Args:
        y: ``(B, C, H, W)`` what ``operator`` observes at full resolution (the photo for inpaint,
            hole values ignored; the low-resolution image for superres; gray ``(B, 1, H, W)`` for
            colorize).
        operator: the full-resolution ``Mask`` (mask ``(H, W)``), ``Downsample`` or ``Grayscale``.
        resolution: the prior's ``R``; region: a :class:`Region` of ``y`` (default: all of it);
        channels: the prior's channels, to check ``y`` against.

    Returns:
        ``(y_p, op_p, geometry)``: ``op_p`` maps ``(B, C, R, R)`` images to ``y_p``'s shape;
        unobserved margins (non-square regions) are masked out by a ``Mask`` after the operator.
    """
    task = _check(y, operator, resolution, channels)
    region = (region or Region(0, 0, y.shape[-1], y.shape[-2])).check(y.shape[-2], y.shape[-1], "the observation")
    factor = operator.factor if task == "superres" else 1
    geo = _geometry(task, region, factor, resolution, tuple(y.shape[-2:]))
    n, box = resolution // factor, geo.box
    lo = Region(box.x // factor, box.y // factor, box.w // factor, box.h // factor)
    valid = torch.zeros(1, 1, n, n, device=y.device)
    lo.crop(valid).fill_(1)
    canvas = y.new_zeros(y.shape[0], y.shape[1], n, n)
    if task == "inpaint":
        content, seen = resize_masked(region.crop(y), region.crop(operator.mask), (lo.h, lo.w))
        mask = valid.expand(seen.shape[0], seen.shape[1], n, n).clone()
        lo.crop(mask).mul_(seen)
        lo.crop(canvas).copy_(content)
        op_p = Mask(mask).to(y.device)
        return op_p(canvas), op_p, geo
    lo.crop(canvas).copy_(resize(region.crop(y), (lo.h, lo.w)))
    op_p = (Downsample(factor, operator.kernel, operator.sigma) if task == "superres" else Grayscale()).to(y.device)
    if lo.h < n or lo.w < n:
        op_p = Mask(valid).to(y.device) @ op_p
    return canvas, op_p, geo


def _prior_up(prior_image: torch.Tensor, geo: Geometry, like: torch.Tensor) -> torch.Tensor:
    r = geo.out_region
    return resize(geo.box.crop(prior_image.to(like)), (r.h, r.w)).clamp(0, 1)


def compose(y: torch.Tensor, operator, prior_image: torch.Tensor, geometry: Geometry, *,
            feather: Optional[int] = None, keep_observed: bool = True) -> torch.Tensor:
    """The full-resolution image from the prior's canvas image ``(B, C, R, R)``.

    The region's result (see the module docstring) is pasted with :func:`paste` into the photo:
    inpaint into ``y`` itself (a hard edge: the pixels around the region are the photo's own),
    colorize into gray ``y`` (the chroma fades out over ``feather`` pixels), superres into the
    consistent bicubic upsampling of ``y`` (faded over ``feather``, then made consistent inside
    the region so that ``Downsample(out) == y`` holds everywhere). ``feather`` default:
    ``max(1, min(w, h) // 8)`` of the output region. ``keep_observed=False`` (inpaint): the prior's
    resized image is used as is in the region, observed pixels included.

    Returns ``(B, C_out, H_out, W_out)``: ``C_out`` = 3 for colorize, else ``C``.
    """
    task, reg = geometry.task, geometry.out_region
    up = _prior_up(prior_image, geometry, y)
    feather = max(1, min(reg.w, reg.h) // 8) if feather is None else int(feather)
    if task == "inpaint":
        mask = geometry.region.crop(operator.mask.to(y))
        patch = fill_holes(geometry.region.crop(y), mask, up) if keep_observed else up
        return paste(y, patch, geometry.region, feather=0)
    if task == "colorize":
        weights = operator.weights
        patch = keep_luma(reg.crop(y), up, weights)
        return paste(y.expand(-1, 3, -1, -1), patch, reg, feather=feather)
    return _compose_superres(y, operator, up, geometry, feather)


def _compose_superres(y, operator, up, geo: Geometry, feather: int) -> torch.Tensor:
    D = operator.to(y.device)
    whole = geo.region == Region(0, 0, geo.photo[1], geo.photo[0])
    if whole:
        return make_consistent(up, y, D.A, D.A_adjoint)
    base = make_consistent(resize(y, geo.out_size).clamp(0, 1), y, D.A, D.A_adjoint)
    pasted = paste(base, up, geo.out_region, feather=feather)
    support = torch.zeros(1, 1, *geo.out_size, device=y.device)
    geo.out_region.crop(support).fill_(1)
    return make_consistent(pasted, y, D.A, D.A_adjoint, support=support)


def paste(photo: torch.Tensor, patch: torch.Tensor, region: Region, *, feather: int = 0) -> torch.Tensor:
    """``photo`` ``(B, C, H, W)`` with ``patch`` ``(B, C, h, w)`` blended into ``region``.

    Inside the region ``out = W patch + (1 - W) photo`` with the :func:`feather_weight` ramp over
    ``feather`` pixels on the sides that lie inside the photo (none on the photo's border);
    every pixel outside the region is ``photo``'s, exactly. Returns a new tensor.
    """
    H, W = photo.shape[-2:]
    region.check(H, W, "the photo")
    if tuple(patch.shape[-2:]) != (region.h, region.w):
        raise ValueError(f"patch is {tuple(patch.shape[-2:])} (H, W), the region {(region.h, region.w)}")
    sides = (region.y > 0, region.y + region.h < H, region.x > 0, region.x + region.w < W)
    weight = feather_weight((region.h, region.w), feather, sides).to(patch)
    out = photo.clone().to(torch.result_type(photo, patch))
    inside = region.crop(out)
    inside.copy_(weight * patch + (1 - weight) * inside)
    return out


def detail_warning(geometry: Geometry) -> Optional[str]:
    """One line when the prior's image is enlarged more than :data:`DETAIL_LIMIT` times, else None."""
    if geometry.upscale <= DETAIL_LIMIT:
        return None
    r, R = geometry.out_region, geometry.resolution
    whole = geometry.region == Region(0, 0, geometry.photo[1], geometry.photo[0])
    hint = "; --region X,Y,W,H (region=) restores a smaller part, such as a face, in more detail" if whole else ""
    return (f"the prior's resolution ({R}x{R}) limits the detail: its image is upsampled {geometry.upscale:.1f}x "
            f"to {r.w}x{r.h} (the observed content is kept at full resolution{hint})")


def restore_photo(y, operator, prior, *, region: Union[Region, str, None] = None, feather: Optional[int] = None,
                  keep_observed: bool = True, warn: Optional[Callable[[str], None]] = None,
                  **solve_kwargs) -> PhotoResult:
    """Restore an observation of any size at its own resolution with a GAN prior.

    Args:
        y: the full-resolution observation ``(B, C, H, W)`` in [0, 1] (a numpy array, PIL image
            or path is read with :func:`restore.io.load_image`): the photo (inpaint; hole values
            are ignored), the low-resolution image (superres) or the gray image (colorize).
        operator: ``Mask`` with an ``(H, W)`` mask, ``Downsample(factor)`` or ``Grayscale()``.
        prior: a :class:`priors.Generator` (``R x R`` images).
        region: a :class:`Region` or ``"X,Y,W,H"``: restore only that part (in ``y``'s pixels).
        feather, keep_observed: see :func:`compose`. warn: receives the one-line
            :func:`detail_warning` (default ``warnings.warn``).
        **solve_kwargs: passed to :func:`restore.solve` (method, steps, seed, preset, device...).

    Returns:
        a :class:`PhotoResult`; ``image`` is ``(B, C, H, W)`` (superres: ``factor`` times larger,
        colorize: 3 channels). Observed pixels, luma, or ``Downsample(image) == y`` hold exactly.
    """
    from .io import load_image
    from .solve import solve

    y = y if isinstance(y, torch.Tensor) else load_image(y, channels=1 if photo_task(operator) == "colorize" else None)
    region = Region.parse(region) if isinstance(region, str) else region
    y_p, op_p, geo = to_prior(y, operator, prior.resolution, region, channels=prior.channels)
    message = detail_warning(geo)
    if message:
        (warn or (lambda m: warnings.warn(m, stacklevel=3)))(message)
    device = next((p.device for p in list(prior.parameters()) + list(prior.buffers())), y.device)
    device = solve_kwargs.get("device") or device
    res = solve(y_p.to(device), op_p.to(device), prior, **solve_kwargs)
    prior_image = res.image.detach().to(y.device)
    image = compose(y, operator, prior_image, geo, feather=feather, keep_observed=keep_observed)
    return PhotoResult(image=image, prior_image=prior_image, geometry=geo, result=res)
