"""``ganrestore batch``: the batch runner (:mod:`restore.batch`) from parsed arguments."""
from __future__ import annotations

import dataclasses
import json

from ..batch import BatchConfig, run_batch
from .commands import task_options
from .common import Console

__all__ = ["run_batch_cli"]


def run_batch_cli(args) -> int:
    """``ganrestore batch``: build the config from parsed arguments, run, print a summary."""
    console = Console(args.quiet, args.json)
    cfg = BatchConfig(input_dir=args.input_dir, output_dir=args.output_dir, task=task_options(args, args.task),
                      prior=args.prior, family=args.family, simulate=args.simulate, noise_sigma=args.noise_sigma,
                      batch_size=args.batch_size, method=args.method, preset=args.preset, steps=args.steps,
                      seed=args.seed, device=args.device, fit=args.fit,
                      keep_observed=args.keep_observed)
    stats = run_batch(cfg, warn=console.warn, progress=console.progress)
    if stats["rank"] == 0:
        console.info(f"batch: {stats['ok']}/{stats['total']} inputs restored ({stats['skipped']} already done on "
                     f"rank 0, {len(stats['failed'])} failed); manifest {stats['manifest']}")
        console.report(dict(stats, config=json.loads(json.dumps(dataclasses.asdict(cfg), default=str))))
    return 0 if stats.get("failed", []) == [] else 1
