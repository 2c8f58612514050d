"""The batch runner's JSONL manifest: crash-safe appends, per-rank shards, deduplicating merge.

Layout in the output folder:

* ``manifest.jsonl``: the merged manifest, one JSON object per input (``input``, ``output``,
  ``status``, ``seconds``, ``seed``, ``metrics``...), sorted by input name; only ever replaced
  atomically.
* ``manifest.rank<R>.jsonl``: the shard rank ``R`` appends to while it runs. A line is written
  (with flush + fsync) only after its output image is in place, so a line always means a
  complete image. A process killed mid-line leaves a partial last line: readers skip it and the
  owner truncates it before appending again. Shards are merged into ``manifest.jsonl`` and
  deleted when every rank has finished.

Records are keyed by the input's file name; when several exist for one input (a rerun of an
input that failed), a successful record wins over a failed one and later lines over earlier ones.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterable, List

from .io import atomic_path

__all__ = ["MANIFEST", "shard_path", "read_lines", "read_records", "repair", "append", "merge", "key_of"]

MANIFEST = "manifest.jsonl"


def shard_path(output_dir, rank: int) -> Path:
    return Path(output_dir) / f"manifest.rank{int(rank)}.jsonl"


def key_of(record: dict) -> str:
    """The deduplication key of a record: the input's file name."""
    return Path(str(record.get("input", ""))).name


def read_lines(path: Path) -> List[dict]:
    """Every complete, valid JSON object line of ``path`` (a partial last line is ignored)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for raw in data.split(b"\n")[: -1 if not data.endswith(b"\n") else None]:
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and "input" in rec:
            out.append(rec)
    return out


def _files(output_dir) -> List[Path]:
    folder = Path(output_dir)
    shards = sorted(folder.glob("manifest.rank*.jsonl"))
    return [folder / MANIFEST] + shards


def _better(new: dict, old: dict) -> bool:
    return new.get("status") == "ok" or old.get("status") != "ok"


def dedupe(records: Iterable[dict]) -> Dict[str, dict]:
    """``{input name: record}`` keeping, per input, the last successful record (else the last)."""
    best: Dict[str, dict] = {}
    for rec in records:
        k = key_of(rec)
        if k not in best or _better(rec, best[k]):
            best[k] = rec
    return best


def read_records(output_dir) -> Dict[str, dict]:
    """All records of the merged manifest and every shard, deduplicated."""
    return dedupe(r for f in _files(output_dir) for r in read_lines(f))


def repair(path: Path) -> None:
    """Truncate a partial last line (left by a killed writer) so appends start on a fresh line."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)
            fh.flush()
            os.fsync(fh.fileno())


def append(path: Path, record: dict) -> None:
    """Append one record as a JSON line, flushed and fsynced before returning."""
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with open(path, "ab") as fh:
        fh.write(line.encode())
        fh.flush()
        os.fsync(fh.fileno())


def merge(output_dir) -> Path:
    """Merge ``manifest.jsonl`` and every shard into ``manifest.jsonl`` (atomically), sorted by
    input name and deduplicated, then delete the shards. Safe to rerun after a crash at any point."""
    folder = Path(output_dir)
    records = read_records(folder)
    with atomic_path(folder / MANIFEST) as tmp:
        with open(tmp, "w") as fh:
            for k in sorted(records):
                fh.write(json.dumps(records[k], sort_keys=True, default=str) + "\n")
    for shard in _files(folder)[1:]:
        shard.unlink(missing_ok=True)
    return folder / MANIFEST
