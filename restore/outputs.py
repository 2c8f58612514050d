"""The output files of one command: checked before the work, then written all or none.

* :func:`check_writable` answers, before a long solve, whether a path can be written: its folder
  (or the nearest existing ancestor, for folders still to be made) must be a folder where a file
  can be created (probed with a temporary file that is removed at once). The error names the
  user's path, never a temporary file.
* :func:`atomic_paths` yields one temporary path beside each target; only when the block has
  written all of them are they fsynced and renamed onto their targets. On any error every
  temporary file is removed and no target is touched.

Example::

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_paths([folder / "a.txt", folder / "b.txt"]) as (a, b):
    ...     _ = a.write_text("1"), b.write_text("2")
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt', 'b.txt']
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, List, Sequence, Union

from .io import InputError

__all__ = ["check_writable", "atomic_paths"]

PathLike = Union[str, os.PathLike]


def check_writable(*paths: PathLike, what: str = "output") -> None:
    """Raise :class:`InputError` (naming the path and what to do) unless every path can be written."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            raise InputError(f"cannot write {what} {path}: it is a folder; give a file name inside it")
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # folders still to be made: the nearest existing one decides
        if not folder.is_dir():
            raise InputError(f"cannot write {what} {path}: {folder} is a file, not a folder; choose another path")
        try:
            fd, probe = tempfile.mkstemp(prefix=".ganrestore-probe.", dir=folder)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise InputError(f"cannot write {what} {path}: {reason} in {folder}; choose a folder you can "
                             "write to") from err
        os.close(fd)
        os.unlink(probe)


def _umask() -> int:
    """The process umask (``os.umask`` can only be read by setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (best effort: some platforms cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_paths(targets: Sequence[PathLike]) -> Iterator[List[Path]]:
    """Yield temporary paths (same folder and suffix as each target); rename them all at the end.

    Parent folders are created. A file gets the permissions a plain ``open`` would give (an
    existing target keeps its mode). Errors inside the block leave every target untouched.
    """
    targets = [Path(t) for t in targets]
    temps: List[Path] = []
    try:
        for path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
            os.close(fd)
            temps.append(Path(tmp))
        yield list(temps)
        for tmp, path in zip(temps, targets):
            os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        for tmp, path in zip(temps, targets):
            os.replace(tmp, path)
        for folder in {p.parent for p in targets}:
            _fsync_dir(folder)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()
