"""The ``ganrestore`` command line.

Sub-commands: ``inpaint``, ``superres``, ``colorize``, ``cs`` (restore one observation),
``degrade`` (make a test observation), ``batch`` (a folder, resumable, torchrun-aware),
``demo`` (no arguments: the whole pipeline on a built-in face) and ``models`` (the registry).

Every user error prints one line on stderr saying what is wrong and what to do, and exits
non-zero without a traceback (``--debug`` shows it).
"""
from __future__ import annotations

import sys
import traceback
import warnings
from pathlib import Path
from typing import Optional, Sequence

from .parser import build_parser

__all__ = ["main"]

_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, PermissionError, IsADirectoryError,
                NotADirectoryError, KeyError)


def _dispatch(args) -> int:
    if args.command in ("inpaint", "superres", "colorize", "cs"):
        from .commands import run_restore
        return run_restore(args, args.command)
    if args.command == "degrade":
        from .commands import run_degrade
        return run_degrade(args)
    if args.command == "batch":
        from .batch import run_batch_cli
        return run_batch_cli(args)
    if args.command == "demo":
        from .demo import run_demo
        return run_demo(args)
    if args.command == "models":
        return _models(args)
    raise AssertionError(args.command)


def _models(args) -> int:
    from priors import registry

    if args.fetch:
        return _fetch_models(args, registry)
    if args.json:
        import json
        names = registry.available()
        print(json.dumps([{k: v for k, v in registry.get_entry(n).items() if k in
                           ("name", "family", "resolution", "licence", "description")} for n in names]))
    else:
        print(registry.models_table())
    return 0


def _fetch_models(args, registry) -> int:
    """``models --fetch NAME|all``: every file downloaded (or found cached) and verified; stops at the
    first failure, whose one-line error names the model."""
    names = registry.available() if args.fetch == "all" else [args.fetch]
    if args.fetch != "all":
        registry.get_entry(args.fetch)  # an unknown name: the error lists the valid ones
    fetched = []
    for name in names:
        try:
            path = registry.fetch(name, progress=not (args.quiet or args.json))
        except (OSError, RuntimeError) as err:  # offline, no network, a checksum mismatch
            from ..io import InputError
            raise InputError(f"cannot fetch {name!r}: {err}") from err
        fetched.append({"name": name, "path": str(path)})
        if not (args.quiet or args.json):
            print(f"{name}: cached and verified at {path}", flush=True)
    if args.json:
        import json
        print(json.dumps({"command": "models", "fetched": fetched, "cache": str(registry.cache_dir())}))
    return 0


def _internal_deprecation(category, filename: str) -> bool:
    """A deprecation notice about torch's own internals (e.g. ``torch.jit.script`` used by
    ``torch.func``): nothing a user of the command line can act on."""
    if issubclass(category, DeprecationWarning):
        return True
    import torch
    return issubclass(category, FutureWarning) and str(filename).startswith(str(Path(torch.__file__).parent))


def _route_warnings(quiet: bool) -> None:
    """Python warnings (e.g. from the registry) as one ``warning:`` line each on stderr."""
    def show(message, category, filename, lineno, file=None, line=None):
        if not quiet and not _internal_deprecation(category, filename):
            text = " ".join(str(message).split())
            sys.stderr.write(text if text.startswith("warning") else f"warning: {text}")
            sys.stderr.write("\n")
    warnings.showwarning = show


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, KeyError):
        text = f"missing key {text}"
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    debug = getattr(args, "debug", False)
    prog = f"ganrestore {args.command}"
    _route_warnings(quiet=getattr(args, "quiet", False))
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except _USER_ERRORS + (OSError, RuntimeError) as err:
        if debug:
            traceback.print_exc()
        hint = "" if isinstance(err, _USER_ERRORS) else " (run with --debug for the traceback)"
        sys.stderr.write(f"{prog}: error: {_one_line(err)}{hint}\n")
        return 1
    except Exception as err:  # noqa: BLE001 - last resort: still one line, traceback under --debug
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"{prog}: internal error: {type(err).__name__}: {_one_line(err)} "
                         "(run with --debug for the traceback and report it)\n")
        return 1
