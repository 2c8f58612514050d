"""Side-by-side comparison figures drawn with PIL (no plotting library needed).

A figure is a grid of panels; each panel is an image with a title above it and an optional
caption below it (typically its PSNR against the truth). Images of any size are shown in
square cells (nearest-neighbour scaling, so pixels stay visible). Files are written atomically.

Example::

    >>> import torch
    >>> x = torch.rand(1, 3, 16, 16)
    >>> img = comparison_image([[Panel("truth", x), Panel("noisy", x.flip(-1), psnr_caption(x.flip(-1), x))]])
    >>> img.size[0] > 2 * 16
    True
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from PIL import Image, ImageDraw, ImageFont

from .io import _to_pil, atomic_path
from .metrics import psnr

__all__ = ["Panel", "comparison_image", "save_comparison", "psnr_caption"]

_BG = (255, 255, 255)
_FG = (20, 20, 20)
_PAD = 6


@dataclass(frozen=True)
class Panel:
    """One cell: ``image`` ``(1, C, H, W)``/``(C, H, W)`` in [0, 1], or ``None`` for an empty cell."""

    title: str
    image: Optional[torch.Tensor]
    caption: str = ""


def psnr_caption(x: torch.Tensor, truth: Optional[torch.Tensor]) -> str:
    """``"PSNR 27.31 dB"`` when ``truth`` is given (and has ``x``'s shape), else ``""``."""
    if truth is None or tuple(x.shape[-3:]) != tuple(truth.shape[-3:]):
        return ""
    a = x.detach().float().cpu().reshape(1, *truth.shape[-3:]).clamp(0, 1)
    b = truth.detach().float().cpu().reshape(1, *truth.shape[-3:]).clamp(0, 1)
    return f"PSNR {float(psnr(a, b)[0]):.2f} dB"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font only
        return ImageFont.load_default()


def _cell(image: Optional[torch.Tensor], cell: int) -> Image.Image:
    if image is None:
        return Image.new("RGB", (cell, cell), (235, 235, 235))
    pil = _to_pil(image).convert("RGB")
    w, h = pil.size
    s = cell / max(w, h)
    pil = pil.resize((max(1, round(w * s)), max(1, round(h * s))), Image.NEAREST)
    out = Image.new("RGB", (cell, cell), _BG)
    out.paste(pil, ((cell - pil.size[0]) // 2, (cell - pil.size[1]) // 2))
    return out


def comparison_image(rows: Sequence[Sequence[Panel]], *, title: str = "", row_labels: Sequence[str] = (),
                     cell: int = 128) -> Image.Image:
    """Draw ``rows`` of :class:`Panel` as one RGB PIL image.

    Args:
        rows: panels, row by row (rows may have different lengths).
        title: a line above the grid.
        row_labels: one label per row, drawn left of it.
        cell: the side of every image cell in pixels.
    """
    if not rows or not any(rows):
        raise ValueError("comparison_image needs at least one panel")
    font, big = _font(max(10, cell // 10)), _font(max(12, cell // 8))
    text_h = max(12, cell // 10) + 4
    label_w = (max(len(s) for s in row_labels) * (cell // 16) + 2 * _PAD) if row_labels else 0
    ncols = max(len(r) for r in rows)
    row_h = text_h + cell + text_h + _PAD
    top = (text_h + 2 * _PAD) if title else _PAD
    canvas = Image.new("RGB", (label_w + ncols * (cell + _PAD) + _PAD, top + len(rows) * row_h), _BG)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((_PAD, _PAD), title, fill=_FG, font=big)
    for r, row in enumerate(rows):
        y0 = top + r * row_h
        if r < len(row_labels):
            draw.text((_PAD, y0 + text_h + cell // 2 - text_h // 2), row_labels[r], fill=_FG, font=big)
        for c, panel in enumerate(row):
            x0 = label_w + _PAD + c * (cell + _PAD)
            draw.text((x0, y0), panel.title, fill=_FG, font=font)
            canvas.paste(_cell(panel.image, cell), (x0, y0 + text_h))
            if panel.caption:
                draw.text((x0, y0 + text_h + cell + 2), panel.caption, fill=_FG, font=font)
    return canvas


def save_comparison(rows: Sequence[Sequence[Panel]], path: Union[str, os.PathLike], *, atomic: bool = True,
                    **kwargs) -> Path:
    """Draw :func:`comparison_image` and write it to ``path`` (PNG/JPEG) atomically; returns the path.
    ``atomic=False`` writes straight to ``path`` (a temporary path of :func:`restore.outputs.atomic_paths`)."""
    path = Path(path)
    img = comparison_image(rows, **kwargs)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write figure {path}: unknown image suffix {path.suffix!r}; use .png")
    if not atomic:
        img.save(path, format=fmt)
        return path
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt)
    return path
