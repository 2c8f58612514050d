"""The ``ganrestore`` argument parser: sub-commands and their options."""
from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..options import DEFAULT_METHOD, METHODS, PRESET_NAMES
from ..tasks import MASK_KINDS, TASKS
from .common import DEFAULT_PRIOR
from .photo import parse_region
from .uncertainty import add_sampling_options

__all__ = ["build_parser", "OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (what is wrong, where to look), exit status 2.

    Option names are never abbreviated (``cs --m 5`` must not silently mean ``--method``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D102 - argparse hook
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"expected an integer in 0..2**63-1, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


FIT_MODES = ("full", "crop", "error")
FIT_HELP = ("full (default): any input size; the output has the input's size (superres: factor x input), "
            "observed pixels, luma or the low-resolution image are kept exactly and the prior's image is "
            "resized into the rest, with one warning where that limits the detail; crop: centre-crop and "
            "resize the input to the prior's size, a prior-size output ('resize' is the old name); "
            "error: refuse an input that is not the prior's size")


def _fit_mode(text: str) -> str:
    return "crop" if text == "resize" else text


def _add_io(p: argparse.ArgumentParser, default_output: str = "") -> None:
    g = p.add_argument_group("output")
    g.add_argument("-o", "--output", default=default_output or None,
                   help="output image path (default: INPUT_restored.png in the current folder)")
    g.add_argument("--compare", metavar="FIG.png", help="also write a side-by-side figure")
    g.add_argument("--truth", metavar="IMAGE", help="the clean image, to report PSNR/SSIM")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g.add_argument("--quiet", action="store_true", help="no progress bar, info or warnings")
    g.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    g.add_argument("--fit", type=_fit_mode, choices=FIT_MODES, default="full", help=FIT_HELP)


def _add_prior(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prior and solver")
    g.add_argument("--prior", default=DEFAULT_PRIOR,
                   help=f"registry name, checkpoint path or module:function (default {DEFAULT_PRIOR})")
    g.add_argument("--family", help="generator family of a checkpoint path (default: detected from its keys)")
    g.add_argument("--method", choices=tuple(METHODS), default=DEFAULT_METHOD,
                   help=f"inversion method (default {DEFAULT_METHOD})")
    g.add_argument("--preset", choices=PRESET_NAMES, default="default", help="solver preset (default 'default')")
    g.add_argument("--steps", type=_positive_int, help="optimization steps (overrides the preset)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    g.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")


def _add_keep_observed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-observed", action=argparse.BooleanOptionalAction, default=True,
                   help="inpainting: keep the observed pixels exactly, fill only the holes (default on)")


def _add_task_options(p: argparse.ArgumentParser, tasks=TASKS) -> None:
    g = p.add_argument_group("task options")
    if "inpaint" in tasks:
        g.add_argument("--mask", metavar="MASK.png", help="mask image: white = observed, black = missing")
        g.add_argument("--mask-kind", choices=MASK_KINDS, default="random",
                       help="generated mask when no --mask is given (default random)")
        g.add_argument("--keep", type=float, default=0.2, help="fraction of pixels kept by a random mask (default 0.2)")
        g.add_argument("--size", type=_positive_int, help="side of a box hole in pixels (default half the image)")
    if "superres" in tasks:
        g.add_argument("--factor", type=_positive_int, default=4, help="super-resolution factor (default 4)")
    if "cs" in tasks:
        g.add_argument("--m", type=_positive_int, help="compressed-sensing measurements (default 10%% of pixels)")
        g.add_argument("--cs-kind", choices=("gaussian", "srht"), default="gaussian",
                       help="compressed-sensing matrix (default gaussian)")


def _add_restore_commands(sub) -> None:
    helps = {"inpaint": "fill in missing pixels (IMAGE: the damaged image, or an .npz observation)",
             "superres": "super-resolve a low-resolution IMAGE (or an .npz observation)",
             "colorize": "colorize a gray or colour IMAGE (or an .npz observation)",
             "cs": "recover an image from compressed measurements (.npz written by degrade)"}
    for task in TASKS:
        p = sub.add_parser(task, help=helps[task], description=helps[task])
        p.add_argument("input", metavar="MEASUREMENTS.npz" if task == "cs" else "IMAGE")
        if task in ("inpaint", "superres"):
            _add_task_options(p, (task,))
        if task != "cs":
            p.add_argument("--region", type=parse_region, metavar="X,Y,W,H",
                           help="restore only this rectangle of the input (left, top, width, height in "
                                "input pixels), such as a face, and paste it back with a feathered seam; "
                                "pixels outside it are unchanged (needs --fit full)")
        if task == "inpaint":
            p.add_argument("--mask-from-alpha", action="store_true",
                           help="the holes are IMAGE's transparent pixels (alpha < 50%%) instead of --mask")
            _add_keep_observed(p)
        _add_prior(p)
        _add_io(p)
        if task == "cs":
            add_sampling_options(p)


def _add_degrade(sub) -> None:
    p = sub.add_parser("degrade", help="make a test observation from a clean IMAGE",
                       description="Degrade a clean IMAGE (fitted to the prior's size) into an observation: "
                                   "-o OUT.npz keeps y with its operator (any task); an image OUT works for "
                                   "inpaint (mask saved beside it as OUT_mask.png), superres and colorize.")
    p.add_argument("input", metavar="IMAGE")
    p.add_argument("--task", choices=TASKS, required=True)
    _add_task_options(p)
    p.add_argument("--noise-sigma", type=float, default=0.0, help="Gaussian noise std added to y (default 0)")
    p.add_argument("-o", "--output", required=True, help="OUT.npz (any task) or OUT.png")
    p.add_argument("--prior", default=DEFAULT_PRIOR, help="the prior whose size and channels the image is fitted to")
    p.add_argument("--family", help="generator family of a checkpoint path (default: detected)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of random masks, CS matrices and noise (default 0)")
    for flag, kw in (("--fit", dict(choices=("resize", "error"), default="resize")),
                     ("--json", dict(action="store_true")), ("--quiet", dict(action="store_true")),
                     ("--debug", dict(action="store_true"))):
        p.add_argument(flag, **kw)


def _add_batch(sub) -> None:
    p = sub.add_parser("batch", help="restore every image in a folder (resumable, torchrun-aware)",
                       description="Restore every input in --input-dir into --output-dir with a JSONL manifest. "
                                   "Rerun to resume. Under torchrun each rank takes a disjoint share.")
    p.add_argument("--input-dir", required=True)
    p.add_argument("--output-dir", required=True)
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--simulate", action="store_true",
                   help="inputs are clean images: degrade them first and report PSNR against them")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="inputs solved together (default 8)")
    p.add_argument("--noise-sigma", type=float, default=0.0, help="noise std for --simulate (default 0)")
    _add_task_options(p)
    _add_prior(p)
    _add_keep_observed(p)
    for flag, kw in (("--fit", dict(choices=("resize", "error"), default="resize")),
                     ("--json", dict(action="store_true")), ("--quiet", dict(action="store_true")),
                     ("--debug", dict(action="store_true"))):
        p.add_argument(flag, **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ganrestore", description="Restore images by inverting pretrained GANs.")
    parser.add_argument("--version", action="version", version=f"ganrestore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    _add_restore_commands(sub)
    _add_degrade(sub)
    _add_batch(sub)
    demo = sub.add_parser("demo", help="degrade a built-in face four ways and restore it (< 3 min on CPU)")
    demo.add_argument("-o", "--output", default="ganrestore-demo.png", help="figure path (default ganrestore-demo.png)")
    demo.add_argument("--device", default="auto")
    demo.add_argument("--steps", type=_positive_int, help="optimization steps per task (default: a fast budget)")
    demo.add_argument("--seed", type=_seed, default=0)
    for flag in ("--json", "--quiet", "--debug"):
        demo.add_argument(flag, action="store_true")
    models = sub.add_parser("models", help="list the registered priors, or --fetch them into the cache",
                            description="List the registered priors (name, family, resolution, cached, size, "
                                        "licence), or download and verify them into the cache with --fetch.")
    models.add_argument("--fetch", metavar="NAME|all",
                        help="download and verify model NAME (or every registered model) into the cache")
    models.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    for flag in ("--json", "--debug"):
        models.add_argument(flag, action="store_true")
    return parser
