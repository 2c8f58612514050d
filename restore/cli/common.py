"""What every sub-command shares: console output, the prior, the device, solve options."""
from __future__ import annotations

import importlib
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from ..io import InputError

__all__ = ["Console", "resolve_device", "load_prior", "solve_kwargs", "UserError", "DEFAULT_PRIOR"]

DEFAULT_PRIOR = "dcgan-digiface64"
UserError = InputError
_PY_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class Console:
    """Routes output: info lines to stdout (unless ``--quiet`` or ``--json``), warnings to
    stderr (unless ``--quiet``; always collected for the JSON report), and the one JSON object.

    With ``hold=True`` warnings wait for :meth:`flush` (called once the inputs are all read and
    checked), so a user error found while reading them is the only line on stderr."""

    def __init__(self, quiet: bool = False, as_json: bool = False, hold: bool = False) -> None:
        self.quiet, self.as_json = quiet, as_json
        self.warnings: list = []
        self._held: Optional[list] = [] if hold else None

    @property
    def progress(self) -> bool:
        """Whether progress bars should be shown (on stderr)."""
        return not (self.quiet or self.as_json)

    def info(self, msg: str) -> None:
        if not (self.quiet or self.as_json):
            print(msg, flush=True)

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        if self.quiet:
            return
        line = msg if msg.startswith("warning") else f"warning: {msg}"
        if self._held is not None:
            self._held.append(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def flush(self) -> None:
        """Print the held warnings and stop holding."""
        held, self._held = self._held or [], None
        for line in held:
            print(line, file=sys.stderr, flush=True)

    def report(self, obj: dict) -> None:
        if self.as_json:
            obj = dict(obj, warnings=self.warnings)
            print(json.dumps(obj, default=_jsonable, sort_keys=True), flush=True)


def _jsonable(v: Any):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().tolist()
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item"):
        return v.item()
    if hasattr(v, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.asdict(v)
    if isinstance(v, (set, tuple)):
        return list(v)
    return repr(v)


def resolve_device(name: Optional[str]) -> torch.device:
    """``auto``/None -> CUDA when available, else CPU; a requested CUDA device must exist."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"unknown --device {name!r}; use cpu, cuda, cuda:N or auto") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here; "
                            f"use cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return dev


def load_prior(spec: str, family: Optional[str] = None, device=None, progress: bool = False):
    """A :class:`priors.Generator` from a registry name, a checkpoint path (``family`` detected
    when not given, with a warning naming it), or
    a Python spec ``module:attribute`` naming a Generator or a function returning one."""
    import priors

    from priors.registry import FAMILIES

    if family is not None and family not in FAMILIES:
        raise UserError(f"unknown --family {family!r}; choose one of {', '.join(FAMILIES)}")
    if _PY_SPEC.match(spec) and not Path(spec).exists():
        G = _from_python(spec)
        return G.to(device) if device is not None else G
    if not Path(spec).exists() and spec not in priors.available() and (Path(spec).suffix or "/" in spec
                                                                      or "\\" in spec):
        raise UserError(f"--prior {spec}: no such checkpoint file, nor a registered model name "
                        "(`ganrestore models` lists them)")
    G = priors.load(spec, family=family, device=device, progress=progress)  # unreadable files: ValueError
    if G.detection is not None:
        warnings.warn(f"--prior {spec}: detected {G.detection}; pass --family to override")
    return G


def _from_python(spec: str):
    import priors

    mod_name, attr = spec.split(":", 1)
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as err:
        raise UserError(f"--prior {spec}: cannot import module {mod_name!r} ({err}); "
                        "check the name and PYTHONPATH") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"--prior {spec}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    G = obj if isinstance(obj, torch.nn.Module) else obj()
    if not isinstance(G, priors.Generator):
        raise UserError(f"--prior {spec} gave a {type(G).__name__}, expected a priors.Generator "
                        "(wrap your network with priors.wrap)")
    return G


def solve_kwargs(args, console: Console) -> dict:
    """Keyword arguments for :func:`restore.solve` from the common options, checked by the solver's
    option validation (so call it before any long work)."""
    from ..options import resolve

    kw = dict(method=args.method, preset=args.preset, seed=args.seed, progress=console.progress)
    if args.steps is not None:
        if args.steps < 1:
            raise UserError(f"--steps must be a positive integer, got {args.steps}")
        kw["steps"] = args.steps
    try:  # the solver's own checks (e.g. an absurd --steps), before the prior is even loaded
        resolve(args.method, args.preset, args.steps)
    except ValueError as err:
        raise UserError(f"--steps {args.steps}: {err}" if args.steps is not None else str(err)) from err
    return kw
