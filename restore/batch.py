"""Restore a folder of observations: batched, resumable, kill-safe, distributed under torchrun.

``ganrestore batch --input-dir IN --output-dir OUT --task TASK [...]`` (or :func:`run_batch`)
restores every input of ``IN`` (sorted by name) into ``OUT/<stem>.png`` and records one line
per input in ``OUT/manifest.jsonl`` (see :mod:`restore.manifest`).

* Resumable: inputs whose manifest record is ``ok`` (with their output present) are skipped;
  images are written atomically and their line only afterwards, so ``kill -9`` at any moment
  loses at most the inputs in flight and never duplicates or truncates anything.
* Distributed: under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set) the process group
  starts (gloo on CPU, NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``); rank ``r`` takes the
  inputs whose sorted index ``i`` has ``i % WORLD_SIZE == r``, writes its own manifest shard,
  and after a barrier rank 0 merges the shards. ``OUT`` must be a folder every machine sees.
* Same problem only: ``OUT/batch-config.json`` records the options that define the problem
  (task and its options, prior, seed, simulate, noise, fit...); resuming into ``OUT`` with other
  ones is refused instead of silently skipping inputs restored for another problem. Solver
  knobs (method, preset, steps) and ``--batch-size``/``--device`` may change between resumes
  (each manifest line records its method).
* ``simulate=True``: inputs are clean images, degraded with the task's operator (one operator
  from ``seed`` for the whole run; noise seeded per input) and scored against (PSNR/SSIM).
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import time
import zlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from . import manifest
from .io import IMAGE_SUFFIXES, InputError, atomic_path, save_image
from .outputs import check_writable
from .tasks import (TaskOptions, build_operator, classical_baseline, clean_image, keep_observed, observe_file,
                     simulate)

__all__ = ["BatchConfig", "run_batch", "list_inputs", "dist_env", "check_same_run", "RUN_FILE"]


@dataclass(frozen=True)
class BatchConfig:
    """Everything a batch run needs (the command line builds it from its arguments)."""

    input_dir: str
    output_dir: str
    task: TaskOptions
    prior: str = "dcgan-digiface64"
    family: Optional[str] = None
    simulate: bool = False
    noise_sigma: float = 0.0
    batch_size: int = 8
    method: str = "mgan"
    preset: str = "default"
    steps: Optional[int] = None
    seed: int = 0
    device: str = "auto"
    fit: str = "resize"
    keep_observed: bool = True
    solver_options: dict = field(default_factory=dict)


def dist_env() -> Tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment (``(0, 1, 0)`` without it)."""
    def get(name, default):
        try:
            return int(os.environ.get(name, default))
        except ValueError as err:
            raise InputError(f"environment variable {name}={os.environ[name]!r} is not an integer") from err
    return get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0)


RUN_FILE = "batch-config.json"
_NOT_RESULT_OPTIONS = ("input_dir", "output_dir", "batch_size", "device", "method", "preset", "steps",
                       "solver_options")


def _result_options(cfg: BatchConfig) -> dict:
    """The options that define the problem a run solves, flattened (``task.factor``...), JSON-able."""
    flat = {}
    for k, v in json.loads(json.dumps(dataclasses.asdict(cfg), default=str)).items():
        if k in _NOT_RESULT_OPTIONS:
            continue
        flat.update({f"{k}.{sk}": sv for sk, sv in v.items()} if k == "task" else {k: v})
    return flat


def check_same_run(cfg: BatchConfig, out_dir: Path) -> None:
    """Record ``cfg``'s result options in ``out_dir/batch-config.json``, or, when a previous run
    left different ones there, raise :class:`InputError` naming each difference."""
    path, wanted = Path(out_dir) / RUN_FILE, _result_options(cfg)
    try:
        before = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        before = None
    if not isinstance(before, dict):
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(wanted, indent=1, sort_keys=True) + "\n")
        return
    diff = [f"{k} {before.get(k)!r} -> {wanted.get(k)!r}" for k in sorted(set(wanted) | set(before))
            if before.get(k) != wanted.get(k)]
    if diff:
        raise InputError(f"--output-dir {out_dir} holds a run with other options ({'; '.join(diff)}); rerun with "
                         f"the same options to resume, or use a new --output-dir")


def list_inputs(input_dir, task: str, simulate: bool = False) -> List[Path]:
    """Input files of ``input_dir`` sorted by name: clean images (``simulate``), else observed
    images and ``.npz`` observations (only ``.npz`` for ``cs``)."""
    folder = Path(input_dir)
    if not folder.is_dir():
        raise InputError(f"--input-dir {folder} is not a folder; give the folder holding the inputs")
    suffixes = IMAGE_SUFFIXES if simulate else (".npz",) if task == "cs" else IMAGE_SUFFIXES + (".npz",)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith("."))
    if not files:
        raise InputError(f"no inputs in {folder} (expected {', '.join(suffixes)} files)")
    stems: Dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise InputError(f"{stems[p.stem].name} and {p.name} would both be restored to {p.stem}.png; rename one")
        stems[p.stem] = p
    return files


def _device(name: str, local_rank: int, world: int) -> torch.device:
    if name in ("auto", "", None):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if world > 1 or dev.index is None:
            dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return dev


class _Dist:
    """The torch.distributed process group when ``world > 1``; no-ops otherwise."""

    def __init__(self, world: int, device: torch.device) -> None:
        import torch.distributed as dist

        self.dist, self.device, self.active = dist, device, False
        if world > 1 and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(device)
            hours = float(os.environ.get("GANRESTORE_DIST_TIMEOUT_HOURS", "12"))
            dist.init_process_group(backend, timeout=timedelta(hours=hours))
            self.active = True

    def barrier(self) -> None:
        if self.active:
            if self.device.type == "cuda":
                self.dist.barrier(device_ids=[self.device.index])
            else:
                self.dist.barrier()

    def close(self) -> None:
        if self.active:
            self.dist.destroy_process_group()


def _input_seed(seed: int, name: str) -> int:
    """A per-input seed that does not depend on sharding or batching."""
    return (int(seed) + zlib.crc32(name.encode())) % (2 ** 31)


def _op_key(op) -> str:
    """A hash of an operator's spec (inputs with equal operators are solved together)."""
    h = hashlib.sha1()

    def feed(obj):
        if isinstance(obj, dict):
            for k in sorted(obj):
                h.update(str(k).encode())
                feed(obj[k])
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                feed(v)
        elif hasattr(obj, "tobytes"):
            h.update(obj.tobytes())
        elif isinstance(obj, torch.Tensor):
            h.update(obj.detach().cpu().numpy().tobytes())
        else:
            h.update(repr(obj).encode())
    feed(op.spec())
    return h.hexdigest()


@dataclass
class _Item:
    path: Path
    out: Path
    y: torch.Tensor
    op: object
    key: str
    truth: Optional[torch.Tensor] = None


def _prepare(cfg: BatchConfig, path: Path, G, shared_op, warn) -> _Item:
    shape = (G.channels, G.resolution, G.resolution)
    out = Path(cfg.output_dir) / f"{path.stem}.png"
    if cfg.simulate:
        if path.suffix.lower() == ".npz":
            raise InputError(f"--simulate takes clean images, got the observation file {path.name}")
        x = clean_image(path, shape, fit=cfg.fit, warn=warn)
        y = simulate(shared_op, x, cfg.noise_sigma, _input_seed(cfg.seed, path.name))
        return _Item(path, out, y, shared_op, "shared", truth=x)
    y, op = observe_file(path, cfg.task, shape, fit=cfg.fit, warn=warn,
                         op=None if path.suffix.lower() == ".npz" else shared_op)
    return _Item(path, out, y, op, "shared" if op is shared_op else _op_key(op))


def _chunks(items: List[_Item], size: int) -> List[List[_Item]]:
    """Consecutive runs of at most ``size`` items sharing one operator."""
    out: List[List[_Item]] = []
    for it in items:
        if out and len(out[-1]) < size and out[-1][0].key == it.key and out[-1][0].y.shape == it.y.shape:
            out[-1].append(it)
        else:
            out.append([it])
    return out


def _finite(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _solve_chunk(cfg: BatchConfig, chunk: List[_Item], G, device, shard: Path, rank: int, progress: bool,
                 written: list) -> None:
    """Solve ``chunk`` as one batch; write each image, then its manifest line (names go to ``written``)."""
    from .solve import solve

    seed = _input_seed(cfg.seed, chunk[0].path.name)
    kw = dict(method=cfg.method, preset=cfg.preset, seed=seed, progress=progress, **cfg.solver_options)
    if cfg.steps is not None:
        kw["steps"] = cfg.steps
    y = torch.cat([it.y for it in chunk]).to(device)
    t0 = time.perf_counter()
    result = solve(y, chunk[0].op.to(device), G, device=device, **kw)
    per_image = (time.perf_counter() - t0) / len(chunk)
    images = result.image.detach().cpu()
    if cfg.keep_observed:
        images = keep_observed(chunk[0].op, y.cpu(), images)
    baseline = _baseline(chunk, y, G) if chunk[0].truth is not None else None
    for j, it in enumerate(chunk):
        save_image(images[j:j + 1], it.out)
        rec = dict(input=str(it.path), output=str(it.out), status="ok", seconds=round(per_image, 4),
                   seed=seed, batch_position=j, batch_len=len(chunk), rank=rank, method=cfg.method)
        if it.truth is not None:
            rec["metrics"] = _scores(images[j:j + 1], it.truth)
            rec["baseline"] = dict(name=baseline[0], **_scores(baseline[1][j:j + 1], it.truth))
        manifest.append(shard, rec)
        written.append(it.path.name)


def _scores(x: torch.Tensor, truth: torch.Tensor) -> dict:
    """PSNR (dB) and SSIM of ``x`` against ``truth`` (``(1, C, H, W)``), rounded, non-finite as None."""
    from .metrics import psnr, ssim

    x, t = x.float().clamp(0, 1), truth.float().clamp(0, 1)
    return _finite({"psnr": round(float(psnr(x, t)[0]), 3), "ssim": round(float(ssim(x, t)[0]), 4)})


def _baseline(chunk: List[_Item], y: torch.Tensor, G) -> Tuple[str, torch.Tensor]:
    """The task's classical reconstruction of the chunk's observations ``y`` (on the solve's device,
    as its operator): its name and ``(B, C, H, W)`` on the CPU."""
    name, image = classical_baseline(chunk[0].op, y, (G.channels, G.resolution, G.resolution))
    return name, image.cpu()


def _record_error(shard: Path, path: Path, err: Exception, rank: int) -> None:
    msg = " ".join(str(err).split()) or type(err).__name__
    manifest.append(shard, dict(input=str(path), output=None, status="error", error=msg, seconds=0.0, rank=rank))


def run_batch(cfg: BatchConfig, *, warn: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Run (or resume) a batch; returns a summary dict (rank 0 has the merged totals)."""
    from .cli.common import load_prior

    rank, world, local_rank = dist_env()
    if not 0 <= rank < world:
        raise InputError(f"RANK={rank} is not in 0..WORLD_SIZE-1={world - 1}")
    inputs = list_inputs(cfg.input_dir, cfg.task.task, cfg.simulate)
    out_dir = Path(cfg.output_dir)
    if out_dir.resolve() == Path(cfg.input_dir).resolve():
        raise InputError(f"--output-dir {out_dir} is the --input-dir: outputs would overwrite inputs of the same "
                         "name; give another folder")
    check_writable(out_dir / manifest.MANIFEST, what="into --output-dir")
    _check_solver_options(cfg)
    if (out_dir / RUN_FILE).is_file():
        check_same_run(cfg, out_dir)  # resuming with other options: say so before anything else
    device = _device(cfg.device, local_rank, world)
    # the prior and the task's operator before anything is written: a bad option leaves OUT untouched
    G = load_prior(cfg.prior, cfg.family, device)
    shape = (G.channels, G.resolution, G.resolution)
    shared_op = None
    if cfg.simulate or any(p.suffix.lower() != ".npz" for p in inputs):
        shared_op = build_operator(cfg.task, shape, seed=cfg.seed, fit=cfg.fit, warn=warn)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_same_run(cfg, out_dir)
    group = _Dist(world, device)
    try:
        stats = _run_share(cfg, inputs, rank, world, device, (G, shared_op), warn, progress)
        group.barrier()
        if rank == 0:
            records = manifest.read_records(out_dir)
            manifest.merge(out_dir)
            names = {p.name for p in inputs}
            stats.update(total=len(inputs), ok=sum(1 for k, r in records.items() if k in names and r.get("status") == "ok"),
                         failed=sorted(k for k, r in records.items() if k in names and r.get("status") != "ok"),
                         manifest=str(out_dir / manifest.MANIFEST))
        group.barrier()
    finally:
        group.close()
    return stats


def _check_solver_options(cfg: BatchConfig) -> None:
    """The solver's own option checks (e.g. an absurd ``steps``), before any work."""
    from .options import resolve

    resolve(cfg.method, cfg.preset, cfg.steps, **cfg.solver_options)


def _run_share(cfg, inputs, rank, world, device, prior_and_op, warn, progress) -> dict:
    out_dir = Path(cfg.output_dir)
    shard = manifest.shard_path(out_dir, rank)
    manifest.repair(shard)
    done = manifest.read_records(out_dir)
    mine = [p for i, p in enumerate(inputs) if i % world == rank]
    _remove_stale_temporaries(out_dir, mine)
    todo = [p for p in mine if not (done.get(p.name, {}).get("status") == "ok"
                                    and (out_dir / f"{p.stem}.png").exists())]
    stats = dict(rank=rank, world_size=world, share=len(mine), skipped=len(mine) - len(todo), solved=0, errors=0)
    if not todo:
        return stats
    G, shared_op = prior_and_op
    items = []
    for p in todo:
        try:
            items.append(_prepare(cfg, p, G, shared_op, warn))
        except (InputError, ValueError, TypeError, OSError) as err:
            _record_error(shard, p, err, rank)
            stats["errors"] += 1
    for chunk in _chunks(items, cfg.batch_size):
        written: list = []
        try:
            _solve_chunk(cfg, chunk, G, device, shard, rank, progress, written)
        except (ValueError, TypeError, RuntimeError, OSError) as err:
            for it in chunk:
                if it.path.name not in written:
                    _record_error(shard, it.path, err, rank)
                    stats["errors"] += 1
        stats["solved"] += len(written)
    return stats


def _remove_stale_temporaries(out_dir: Path, mine: List[Path]) -> None:
    """Delete temporary files a killed run left for this rank's outputs (never another rank's)."""
    for p in mine:
        for tmp in out_dir.glob(f".{glob.escape(p.stem)}.????????.tmp.png"):
            tmp.unlink(missing_ok=True)
