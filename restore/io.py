"""Image and observation I/O: PNG/JPEG <-> ``(1, C, H, W)`` float tensors in ``[0, 1]``.

* :func:`load_image` reads a file, a PIL image, a numpy array or a tensor.
* :func:`save_image` writes atomically (temporary file in the same folder, then rename), so a
  reader never sees half a PNG, even if the process is killed mid-write.
* :func:`fit_image` centre-crops to square and resizes to the size a prior needs
  (``mode="resize"``, with a one-line warning) or refuses (``mode="error"``).
* :func:`save_observation` / :func:`load_observation` keep an observation ``y`` together with
  its operator's spec and seed in one ``.npz`` file (what ``ganrestore degrade`` writes).

Example::

    >>> import numpy as np
    >>> x = load_image(np.zeros((8, 6, 3), dtype=np.uint8))
    >>> tuple(x.shape), float(x.max())
    ((1, 3, 8, 6), 0.0)
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

__all__ = ["InputError", "load_image", "load_alpha", "alpha_channel", "save_image", "fit_image", "to_channels", "atomic_path",
           "save_observation", "load_observation", "IMAGE_SUFFIXES", "OBSERVATION_VERSION"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
OBSERVATION_VERSION = 1
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as operators.Grayscale

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]


class InputError(ValueError):
    """A problem with the user's input (missing file, unreadable image, wrong size...).

    The message says what is wrong and what to do; the command line prints it as one line.
    """


# ---------------------------------------------------------------------------------- atomic
@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``.

    The temporary name keeps ``path``'s suffix (so writers infer the format) and is removed on
    failure. Parent folders are created. The file gets the permissions a plain ``open`` would
    give (``0o666`` less the umask; an existing file keeps its mode), not ``mkstemp``'s ``0o600``.
    One target of :func:`restore.outputs.atomic_paths`, which writes several all or none.
    """
    from .outputs import atomic_paths  # the one implementation (restore.outputs imports this module)

    with atomic_paths([path]) as (tmp,):
        yield tmp


# ---------------------------------------------------------------------------------- loading
def load_image(src: ImageLike, *, channels: Optional[int] = None, what: str = "image",
               warn: Optional[Callable[[str], None]] = None) -> torch.Tensor:
    """Read an image as a float32 tensor ``(1, C, H, W)`` in ``[0, 1]``.

    Args:
        src: a path (PNG, JPEG, BMP, TIFF, WebP), a PIL image, a numpy array ``(H, W)`` or
            ``(H, W, C)`` (uint8, uint16, bool or float in [0, 1]), or a tensor ``(H, W)``,
            ``(C, H, W)`` or ``(1, C, H, W)`` in [0, 1].
        channels: convert to 1 (BT.601 luma) or 3 channels; ``None`` keeps 1 for gray images
            and 3 for colour ones (alpha is dropped).
        what: the name used in error messages ("image", "mask", "truth"...).
        warn: reports that transparent pixels of a file or PIL image lost their alpha (default
            ``warnings.warn``).

    Raises:
        InputError: the file is missing or not an image, or the array has the wrong shape,
            dtype or range.
    """
    if isinstance(src, (str, os.PathLike)):
        x = _array_to_tensor(_read_file(Path(src), what, warn), what)
    elif isinstance(src, Image.Image):
        _warn_alpha(src, what, warn)
        x = _array_to_tensor(_pil_to_array(src), what)
    elif isinstance(src, np.ndarray):
        x = _array_to_tensor(src, what)
    elif isinstance(src, torch.Tensor):
        x = _tensor_to_image(src, what)
    else:
        raise TypeError(f"{what} must be a path, PIL image, numpy array or tensor, got {type(src).__name__}")
    return to_channels(x, channels) if channels is not None else x


def _read_file(path: Path, what: str, warn=None) -> np.ndarray:
    if not path.exists():
        raise InputError(f"{what} file not found: {path} (check the path)")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, expected an image file (PNG or JPEG)")
    if path.stat().st_size == 0:
        raise InputError(f"{what} file {path} is empty (0 bytes); give a PNG or JPEG image")
    try:
        with Image.open(path) as img:
            img.load()
            _warn_alpha(img, f"{what} {path.name}", warn)
            return _pil_to_array(img)
    except Image.DecompressionBombError as err:
        raise InputError(f"cannot read {what} {path}: {err}; give an image under "
                         f"{Image.MAX_IMAGE_PIXELS} pixels") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"cannot read {what} {path}: {err}; give a PNG or JPEG image") from err


def alpha_channel(img: Image.Image) -> Optional[np.ndarray]:
    """The alpha channel of ``img`` as uint8 ``(H, W)``, or None when it has none."""
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        return np.asarray(img.convert("RGBA"))[..., 3]
    return None


def load_alpha(path: Union[str, os.PathLike], what: str = "image") -> torch.Tensor:
    """The alpha channel (transparency) of an image file as ``(1, 1, H, W)`` in ``[0, 1]``
    (1 = opaque). Raises :class:`InputError` when the file has none."""
    path = Path(path)
    _read_file(path, what, warn=lambda _msg: None)  # the same checks and messages as load_image
    with Image.open(path) as img:
        alpha = alpha_channel(img)
    if alpha is None:
        raise InputError(f"{what} {path} has no alpha channel (transparency) to take a mask from; "
                         "save it as an RGBA PNG with transparent holes, or pass --mask MASK.png")
    return torch.from_numpy(alpha.astype(np.float32) / 255.0)[None, None]


def _warn_alpha(img: Image.Image, what: str, warn) -> None:
    """One line when transparent pixels are about to lose their alpha."""
    alpha = alpha_channel(img)
    if alpha is not None and int(alpha.min()) < 255:
        share = float((alpha < 255).mean())
        (warn or (lambda m: warnings.warn(m, stacklevel=4)))(
            f"warning: {what} has transparent pixels ({share:.1%}); the alpha channel is dropped and they keep "
            "their colour values (to inpaint them, pass --mask-from-alpha)")


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """PIL image -> uint8/uint16/float array ``(H, W)`` or ``(H, W, 3)``."""
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img, dtype=np.uint16)
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode == "I" and arr.max() > 255 else (255.0 if img.mode == "I" else 1.0)
        return np.clip(arr / top, 0.0, 1.0)
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"))
    if img.mode == "LA":
        return np.asarray(img.convert("L"))
    return np.asarray(img.convert("RGB"))


def _array_to_tensor(arr: np.ndarray, what: str) -> torch.Tensor:
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        arr = arr[..., :3] if arr.shape[-1] == 4 else arr
        arr = np.moveaxis(arr, -1, 0)
    elif arr.ndim == 2:
        arr = arr[None]
    else:
        raise InputError(f"{what} array must have shape (H, W) or (H, W, C) with C in 1, 3, 4; got {arr.shape}")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
    else:
        raise InputError(f"{what} array dtype must be uint8, uint16, bool or float in [0, 1]; got {arr.dtype}")
    return _check_range(torch.from_numpy(np.ascontiguousarray(out))[None], what)


def _tensor_to_image(t: torch.Tensor, what: str) -> torch.Tensor:
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t[None]
    elif t.dim() != 4 or t.shape[0] != 1:
        raise InputError(f"{what} tensor must have shape (H, W), (C, H, W) or (1, C, H, W); got {tuple(t.shape)}")
    if t.shape[1] not in (1, 3):
        raise InputError(f"{what} tensor must have 1 or 3 channels; got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif t.dtype == torch.bool:
        t = t.float()
    elif not t.is_floating_point():
        raise InputError(f"{what} tensor dtype must be float in [0, 1], uint8 or bool; got {t.dtype}")
    return _check_range(t.detach().to("cpu", torch.float32), what)


def _check_range(x: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.isfinite(x).all():
        raise InputError(f"{what} contains NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        raise InputError(f"{what} values must lie in [0, 1]; got [{lo:.4g}, {hi:.4g}] "
                         "(divide 8-bit data by 255, or map [-1, 1] data with (x + 1) / 2)")
    return x.clamp(0.0, 1.0)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, channels, H, W)``: BT.601 luma for 3 -> 1, repetition for 1 -> 3."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    c = x.shape[1]
    if c == channels:
        return x
    if c == 3 and channels == 1:
        w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    if c == 1 and channels == 3:
        return x.repeat(1, 3, 1, 1)
    raise ValueError(f"cannot convert {c} channels to {channels}")


# ---------------------------------------------------------------------------------- fitting
def fit_image(x: torch.Tensor, size: Union[int, Tuple[int, int]], *, mode: str = "resize",
              what: str = "image", warn: Optional[Callable[[str], None]] = None) -> torch.Tensor:
    """Bring ``x`` ``(B, C, H, W)`` to spatial ``size`` (an int for square).

    ``mode="resize"``: centre-crop to the target aspect ratio, then resize (bicubic, antialiased,
    clamped to [0, 1]) and report one line through ``warn`` (default ``warnings.warn``).
    ``mode="error"``: raise :class:`InputError` naming both sizes.
    """
    th, tw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    h, w = x.shape[-2:]
    if (h, w) == (th, tw):
        return x
    if mode == "error":
        raise InputError(f"{what} is {w}x{h} pixels but {tw}x{th} is needed; resize it, "
                         "or pass --fit resize to centre-crop and resize automatically")
    if mode != "resize":
        raise ValueError(f"fit mode must be 'resize' or 'error', got {mode!r}")
    ch, cw = _crop_box(h, w, th / tw)
    _check_enlargement(what, (h, w), (ch, cw), (th, tw))
    top, left = (h - ch) // 2, (w - cw) // 2
    cropped = x[..., top:top + ch, left:left + cw]
    out = F.interpolate(cropped, size=(th, tw), mode="bicubic", align_corners=False,
                        antialias=(th < ch or tw < cw)).clamp(0.0, 1.0)
    crop_note = f" (centre crop {cw}x{ch})" if (ch, cw) != (h, w) else ""
    (warn or (lambda m: warnings.warn(m, stacklevel=3)))(
        f"warning: {what} is {w}x{h}; resized to {tw}x{th}{crop_note} (use --fit error to refuse)")
    return out


MIN_SIDE, MAX_ENLARGEMENT = 4, 4.0


def _check_enlargement(what: str, hw, crop, target) -> None:
    """Refuse to resize images under ``MIN_SIDE`` pixels, or to enlarge one more than ``MAX_ENLARGEMENT`` times:
    there is nothing left in them to restore."""
    (h, w), (ch, cw), (th, tw) = hw, crop, target
    scale = max(th / ch, tw / cw)
    if min(h, w) < MIN_SIDE or scale > MAX_ENLARGEMENT:
        need_h, need_w = max(MIN_SIDE, -(-th // int(MAX_ENLARGEMENT))), max(MIN_SIDE, -(-tw // int(MAX_ENLARGEMENT)))
        raise InputError(f"{what} is {w}x{h} pixels: too small to resize to {tw}x{th} (that would enlarge it "
                         f"{scale:.1f}x, at most {MAX_ENLARGEMENT:g}x); give an image of at least {need_w}x{need_h} pixels")


def _crop_box(h: int, w: int, aspect: float) -> Tuple[int, int]:
    """Largest centred (height, width) of ``aspect = height / width`` inside ``h x w``."""
    if h / w > aspect:
        return max(1, round(w * aspect)), w
    return h, max(1, round(h / aspect))


# ---------------------------------------------------------------------------------- saving
def save_image(x: torch.Tensor, path: Union[str, os.PathLike], *, atomic: bool = True) -> Path:
    """Write ``x`` ``(1, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` in [0, 1] to ``path`` atomically.

    The format follows the suffix (PNG recommended; JPEG is lossy). Values are clamped to
    [0, 1] and rounded to 8 bits. Returns the path. ``atomic=False`` writes straight to ``path``
    (for a temporary path that :func:`restore.outputs.atomic_paths` renames with its siblings).
    """
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot write {path}: unknown image suffix {path.suffix!r}; use .png or .jpg")
    img = _to_pil(x)
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    if not atomic:
        img.save(path, format=fmt)
        return path
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt)
    return path


def _to_pil(x: torch.Tensor) -> Image.Image:
    t = x.detach().to("cpu", torch.float32)
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"save_image writes one image; got a batch of shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"image must have shape (1, C, H, W), (C, H, W) or (H, W) with C in 1, 3; got {tuple(x.shape)}")
    arr = (t.nan_to_num(0.0).clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0], mode="L") if arr.shape[-1] == 1 else Image.fromarray(arr, mode="RGB")


# ---------------------------------------------------------------------------------- observations
def save_observation(path: Union[str, os.PathLike], y: torch.Tensor, spec: dict, *,
                     seed: Optional[int] = None, task: str = "", meta: Optional[dict] = None,
                     atomic: bool = True) -> Path:
    """Write an observation file (``.npz``): ``y`` (float32), the operator ``spec`` (nested
    JSON plus numpy arrays, as ``op.spec()`` returns it), the ``seed`` it was made with, the
    ``task`` name and free-form JSON ``meta``. Written atomically (``atomic=False``: straight to
    ``path``, a temporary path of :func:`restore.outputs.atomic_paths`); read with :func:`load_observation`.
    """
    arrays: dict = {}
    doc = {"version": OBSERVATION_VERSION, "task": task, "seed": seed,
           "spec": _externalize(spec, arrays), "meta": meta or {}}
    payload = {"y": y.detach().to("cpu", torch.float32).numpy(),
               "header": np.array(json.dumps(doc))}
    payload.update(arrays)
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"observation files end in .npz; got {path}")
    with (atomic_path(path) if atomic else contextlib.nullcontext(path)) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **payload)
    return path


def load_observation(path: Union[str, os.PathLike]) -> Tuple[torch.Tensor, dict, dict]:
    """Read an observation file -> ``(y, spec, info)`` with ``info`` = task, seed, meta, version.

    Raises :class:`InputError` when the file is missing or is not an observation file.
    """
    path = Path(path)
    make = "make one with `ganrestore degrade IMAGE --task ... -o OUT.npz`"
    if not path.is_file():
        what = "is a folder, not" if path.is_dir() else "not found:"
        raise InputError(f"observation file {what} {path} ({make})")
    if path.stat().st_size == 0:
        raise InputError(f"observation file {path} is empty (0 bytes); {make}")
    try:
        with np.load(path, allow_pickle=False) as data:
            doc = json.loads(str(data["header"]))
            y = torch.from_numpy(np.array(data["y"], dtype=np.float32))
            spec = _internalize(doc["spec"], data)
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as err:
        raise InputError(f"{path} is not a ganrestore observation file (a damaged or foreign .npz: "
                         f"{type(err).__name__}: {err}); {make}") from err
    if y.dim() < 2 or y.numel() == 0:
        raise InputError(f"{path}: y has shape {tuple(y.shape)}, expected a batch (B, ...) of observations; {make}")
    if not torch.isfinite(y).all():
        raise InputError(f"{path}: y holds {int((~torch.isfinite(y)).sum())} NaN or infinite value(s); "
                         f"observations must be finite ({make})")
    info = {k: doc.get(k) for k in ("task", "seed", "meta", "version")}
    return y, spec, info


def _externalize(obj: Any, arrays: dict) -> Any:
    """Replace arrays/tensors in a nested spec by ``{"__array__": key}`` references."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        key = f"spec_array_{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {str(k): _externalize(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_externalize(v, arrays) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _internalize(obj: Any, data) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return np.array(data[obj["__array__"]])
        return {k: _internalize(v, data) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_internalize(v, data) for v in obj]
    return obj
