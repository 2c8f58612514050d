"""Every bad input gets a clear answer before any work, and nothing is written.

Two tables:

* ``CLI_CASES``: ``ganrestore`` sub-commands run in-process on bad inputs. Each must exit 1 (2 for
  usage errors), print exactly one line on stderr naming the problem, no traceback, and leave every
  file and folder as it was (temporary files included). The tiny random prior
  ``priors.dcgan:tiny`` (16x16 RGB) and ``--steps 1`` keep the few cases that get past the
  checks fast; most are refused before the prior is even loaded.
* ``API_CASES``: ``restore.solve`` and ``priors.load`` raise ``ValueError`` or ``TypeError``
  with a message, before the generator runs once (a forward hook counts its calls).

``WARN_CASES`` are inputs that are accepted with exactly one warning line (RGBA input, a mask
observing under 1% of the pixels). To add a case, append a row to a table.
"""
from __future__ import annotations

import errno
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

import priors
import restore
from operators import Downsample, Grayscale, Mask
from restore.cli import main
from restore.io import save_observation

TINY = ("--prior", "priors.dcgan:tiny", "--steps", "1", "--preset", "fast", "--method", "latent")


# ----------------------------------------------------------------------------- the input files
def _png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels (an image too large to decode: a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def make_inputs(folder: Path) -> None:
    """Every bad (and one good) input file the tables refer to, by name."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    _png(folder / "photo.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    _png(folder / "black.png", np.zeros((16, 16), np.uint8))
    _png(folder / "one.png", rng.integers(0, 256, (1, 1, 3), dtype=np.uint8))
    _png(folder / "two.png", rng.integers(0, 256, (2, 2, 3), dtype=np.uint8))
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[4:10, 4:10, 3] = 0
    _png(folder / "rgba.png", rgba)
    clear = rgba.copy()
    clear[..., 3] = 0
    _png(folder / "transparent.png", clear)
    sparse = np.zeros((16, 16), np.uint8)
    sparse[0, 0] = 255  # 1 of 256 pixels observed: 0.4%
    _png(folder / "sparse_mask.png", sparse)
    (folder / "empty.png").write_bytes(b"")
    (folder / "empty.npz").write_bytes(b"")
    (folder / "text.png").write_text("not an image\n")
    (folder / "corrupt.npz").write_bytes(b"PK\x03\x04" + b"garbage" * 20)
    np.savez(folder / "foreign.npz", a=np.zeros(3))
    (folder / "bad.pth").write_text("not a checkpoint\n")
    (folder / "dir.png").mkdir()
    x = torch.rand(1, 3, 16, 16)
    op = Grayscale()
    for name, y in (("nan", op(x).index_put_((torch.tensor([0]),), torch.tensor(float("nan")))),
                    ("inf", op(x) + torch.tensor(float("inf")))):
        save_observation(folder / f"{name}.npz", y, op.spec(), seed=0, task="colorize")
    save_observation(folder / "mismatch.npz", torch.rand(1, 1, 8, 8), op.spec(), seed=0, task="colorize")
    down = Downsample(2)
    save_observation(folder / "other_prior.npz", down(torch.rand(1, 3, 64, 64)), down.spec(), seed=0, task="superres")
    save_observation(folder / "unknown_op.npz", op(x), {"type": "NoSuchOperator"}, seed=0, task="colorize")
    save_observation(folder / "flat.npz", op(x).flatten(), op.spec(), seed=0, task="colorize")
    (folder / "bomb.png").write_bytes(_png_header(30000, 30000))
    from operators import CompressedSensing
    cs = CompressedSensing(40, (3, 16, 16), seed=0)
    save_observation(folder / "noisy.npz", cs(x), cs.spec(), seed=0, task="cs", meta={"noise_sigma": 0.02})
    blind = Mask(torch.zeros(1, 1, 16, 16))
    save_observation(folder / "blind.npz", blind(x), blind.spec(), seed=0, task="inpaint")


def snapshot(*folders: Path) -> dict:
    """Every file and folder below ``folders`` (hidden ones too) with its size and mtime."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            st = p.lstat()
            out[str(p)] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_inputs")
    make_inputs(folder)
    return folder


def run(capsys, argv) -> Tuple[int, str, str]:
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


# ----------------------------------------------------------------------------- the CLI table
@dataclass(frozen=True)
class CliCase:
    """``argv`` with ``{in}`` (the inputs folder) and ``{out}`` (an empty output folder, also the
    working directory); ``needles`` must all appear in the one stderr line."""

    id: str
    argv: Tuple[str, ...]
    needles: Tuple[str, ...]
    rc: int = 1
    tiny: bool = True  # append TINY (prior, one step)
    env: Tuple[Tuple[str, str], ...] = ()


def C(id, argv: str, *needles, rc=1, tiny=True, env=()) -> CliCase:
    return CliCase(id, tuple(argv.split()), tuple(needles), rc, tiny, tuple(env))


R = ("inpaint", "superres", "colorize")
CLI_CASES: Sequence[CliCase] = [
    # 1. nothing observed
    C("inpaint-all-black-mask", "inpaint {in}/photo.png --mask {in}/black.png -o {out}/r.png", "black.png", "observes no pixel"),
    C("inpaint-all-black-mask-compare", "inpaint {in}/photo.png --mask {in}/black.png -o {out}/r.png --compare {out}/f.png",
      "observes no pixel"),
    C("inpaint-all-black-mask-crop", "inpaint {in}/photo.png --mask {in}/black.png --fit crop -o {out}/r.png", "observes no pixel"),
    C("inpaint-box-hole-everywhere", "inpaint {in}/photo.png --mask-kind box --size 16 -o {out}/r.png", "box mask", "observes no pixel"),
    C("inpaint-npz-blind-mask", "inpaint {in}/blind.npz -o {out}/r.png", "blind.npz", "observes no pixel"),
    C("inpaint-alpha-all-transparent", "inpaint {in}/transparent.png --mask-from-alpha -o {out}/r.png", "observes no pixel"),
    C("degrade-all-black-mask", "degrade {in}/photo.png --task inpaint --mask {in}/black.png -o {out}/y.npz", "observes no pixel"),
    C("batch-all-black-mask", "batch --input-dir {in}/clean --output-dir {out}/o --task inpaint --mask {in}/black.png --simulate",
      "observes no pixel"),
    # 2. outputs that cannot be written (checked before the prior is loaded)
    *[C(f"{t}-output-under-a-file", f"{t} {{in}}/photo.png -o {{in}}/photo.png/r.png", "photo.png/r.png", "not a folder")
      for t in R],
    C("cs-output-under-a-file", "cs {in}/nan.npz -o {in}/photo.png/r.png", "not a folder"),
    C("inpaint-compare-under-a-file", "inpaint {in}/photo.png -o {out}/r.png --compare {in}/photo.png/f.png",
      "photo.png/f.png", "not a folder"),
    C("inpaint-output-is-a-folder", "inpaint {in}/photo.png -o {in}/dir.png", "dir.png", "is a folder"),
    C("inpaint-output-read-only", "inpaint {in}/photo.png -o {out}/ro/r.png", "ro/r.png", "Read-only file system"),
    C("inpaint-compare-read-only", "inpaint {in}/photo.png -o {out}/r.png --compare {out}/ro/f.png", "ro/f.png",
      "Read-only file system"),
    C("inpaint-output-twice", "inpaint {in}/photo.png -o {out}/r.png --compare {out}/r.png", "same file"),
    C("degrade-output-under-a-file", "degrade {in}/photo.png --task colorize -o {in}/photo.png/y.npz", "not a folder"),
    C("degrade-read-only", "degrade {in}/photo.png --task inpaint -o {out}/ro/y.png", "ro/y.png",
      "Read-only file system"),
    C("demo-output-under-a-file", "demo -o {in}/photo.png/demo.png", "not a folder", tiny=False),
    C("demo-output-suffix", "demo -o {out}/demo.txt", "unknown image suffix", tiny=False),
    C("batch-output-under-a-file", "batch --input-dir {in}/clean --output-dir {in}/photo.png/o --task colorize",
      "not a folder"),
    # 3. damaged observation files: user errors naming the file
    *[C(f"{t}-corrupt-npz", f"{t} {{in}}/corrupt.npz -o {{out}}/r.png", "corrupt.npz", "not a ganrestore observation file")
      for t in R + ("cs",)],
    C("cs-empty-npz", "cs {in}/empty.npz -o {out}/r.png", "empty.npz", "empty"),
    C("cs-foreign-npz", "cs {in}/foreign.npz -o {out}/r.png", "foreign.npz", "not a ganrestore observation file"),
    C("cs-nan-npz", "cs {in}/nan.npz -o {out}/r.png", "nan.npz", "NaN"),
    C("colorize-inf-npz", "colorize {in}/inf.npz -o {out}/r.png", "inf.npz", "NaN or infinite"),
    C("cs-npz-y-does-not-match-spec", "cs {in}/mismatch.npz -o {out}/r.png", "mismatch.npz", "per-sample shape"),
    C("superres-npz-for-another-prior", "superres {in}/other_prior.npz --fit crop -o {out}/r.png", "other_prior.npz",
      "another prior"),
    C("colorize-npz-unknown-operator", "colorize {in}/unknown_op.npz -o {out}/r.png", "operator spec"),
    C("cs-npz-flat-y", "cs {in}/flat.npz -o {out}/r.png", "flat.npz", "batch (B, ...)"),
    C("inpaint-decompression-bomb", "inpaint {in}/bomb.png -o {out}/r.png", "bomb.png", "cannot read"),
    # 5. messages and options
    C("degrade-unknown-suffix", "degrade {in}/photo.png --task colorize -o {out}/y.txt", "y.txt", ".png", ".npz"),
    *[C(f"{t}-no-keep-observed-option", f"{t} {{in}}/photo.png --no-keep-observed -o {{out}}/r.png",
        "unrecognized arguments", rc=2) for t in ("superres", "colorize")],
    C("cs-no-abbreviated-options", "cs {in}/nan.npz --m 5 -o {out}/r.png", "unrecognized arguments: --m", rc=2),
    C("alpha-and-mask", "inpaint {in}/rgba.png --mask-from-alpha --mask {in}/black.png -o {out}/r.png",
      "--mask-from-alpha"),
    C("alpha-without-alpha", "inpaint {in}/photo.png --mask-from-alpha -o {out}/r.png", "no alpha channel"),
    # empty files, files that are not images, tiny images
    *[C(f"{t}-empty-png", f"{t} {{in}}/empty.png -o {{out}}/r.png", "empty.png", "empty") for t in R],
    C("degrade-empty-png", "degrade {in}/empty.png --task colorize -o {out}/y.npz", "empty"),
    C("truth-empty-png", "colorize {in}/photo.png --truth {in}/empty.png -o {out}/r.png", "empty"),
    C("inpaint-text-as-image", "inpaint {in}/text.png -o {out}/r.png", "text.png", "cannot read"),
    C("inpaint-mask-not-an-image", "inpaint {in}/photo.png --mask {in}/text.png -o {out}/r.png", "mask", "text.png"),
    C("inpaint-mask-empty", "inpaint {in}/photo.png --mask {in}/empty.png -o {out}/r.png", "mask", "empty"),
    *[C(f"{t}-1x1", f"{t} {{in}}/one.png -o {{out}}/r.png", "1x1", "too small") for t in R],
    *[C(f"{t}-2x2", f"{t} {{in}}/two.png -o {{out}}/r.png", "2x2", "too small") for t in R],
    C("inpaint-2x2-crop", "inpaint {in}/two.png --fit crop -o {out}/r.png", "2x2", "too small"),
    C("degrade-1x1", "degrade {in}/one.png --task colorize -o {out}/y.npz", "1x1", "too small"),
    C("mask-1x1", "inpaint {in}/photo.png --mask {in}/one.png --fit crop -o {out}/r.png", "1x1", "too small"),
    # absurd or negative numbers
    *[C(f"{t}-steps-1e9", f"{t} {{in}}/photo.png -o {{out}}/r.png --steps 1000000000", "at most 100000", tiny=False)
      for t in R],
    C("cs-steps-1e9", "cs {in}/nan.npz -o {out}/r.png --steps 1000000000", "at most 100000", tiny=False),
    C("demo-steps-1e9", "demo -o {out}/demo.png --steps 1000000000", "at most 100000", tiny=False),
    C("batch-steps-1e9", "batch --input-dir {in}/clean --output-dir {out}/o --task colorize --steps 1000000000 "
      "--prior priors.dcgan:tiny", "at most 100000", tiny=False),
    C("steps-zero", "inpaint {in}/photo.png --steps 0", "--steps", rc=2, tiny=False),
    C("steps-negative", "inpaint {in}/photo.png --steps -3", "--steps", rc=2, tiny=False),
    C("size-negative", "inpaint {in}/photo.png --mask-kind box --size -3", "--size", rc=2),
    C("factor-negative", "superres {in}/photo.png --factor -2", "--factor", rc=2),
    C("m-negative", "degrade {in}/photo.png --task cs --m -5 -o {out}/y.npz", "--m", rc=2),
    C("keep-negative", "inpaint {in}/photo.png --keep -0.5 -o {out}/r.png", "--keep"),
    C("keep-zero", "degrade {in}/photo.png --task inpaint --keep 0 -o {out}/y.npz", "--keep"),
    C("noise-negative", "degrade {in}/photo.png --task colorize --noise-sigma -1 -o {out}/y.npz", "--noise-sigma"),
    C("batch-size-negative", "batch --input-dir {in}/clean --output-dir {out}/o --task colorize --batch-size -1",
      "--batch-size", rc=2),
    # priors
    C("unknown-family", "colorize {in}/photo.png --family biggan2 -o {out}/r.png", "unknown --family", "biggan2"),
    C("unknown-family-checkpoint", "colorize {in}/photo.png --prior {in}/bad.pth --family foo -o {out}/r.png",
      "unknown --family", tiny=False),
    C("unreadable-checkpoint", "colorize {in}/photo.png --prior {in}/bad.pth --family dcgan -o {out}/r.png",
      "bad.pth", "cannot load", tiny=False),
    C("unreadable-checkpoint-detected", "colorize {in}/photo.png --prior {in}/bad.pth -o {out}/r.png",
      "bad.pth", "checkpoint", tiny=False),
    C("empty-checkpoint", "colorize {in}/photo.png --prior {in}/empty.npz --family dcgan -o {out}/r.png",
      "empty.npz", "cannot load", tiny=False),
    C("batch-no-inputs", "batch --input-dir {out}/ro --output-dir {out}/o --task colorize", "no inputs"),
    C("missing-checkpoint", "colorize {in}/photo.png --prior {in}/nope.pth -o {out}/r.png", "nope.pth",
      "no such checkpoint", tiny=False),
    C("unknown-prior-name", "colorize {in}/photo.png --prior dcgan-digiface65 -o {out}/r.png", "unknown model",
      "dcgan-digiface64", tiny=False),
    C("models-fetch-unknown", "models --fetch nosuch", "unknown model", tiny=False),
    C("models-fetch-offline", "models --fetch mlp-mnist28", "mlp-mnist28", "GANRESTORE_OFFLINE", tiny=False,
      env=(("GANRESTORE_OFFLINE", "1"), ("GANRESTORE_HOME", "{out}/cache"))),
    C("seed-too-large", "colorize {in}/photo.png --seed 99999999999999999999 -o {out}/r.png", "--seed", rc=2),
    C("seed-negative", "degrade {in}/photo.png --task cs --seed -1 -o {out}/y.npz", "--seed", rc=2),
    C("output-is-the-input", "colorize {in}/photo.png -o {in}/photo.png", "also an input"),
    C("output-is-the-truth", "inpaint {in}/photo.png --truth {in}/rgba.png -o {in}/rgba.png", "also an input"),
    C("degrade-output-is-the-input", "degrade {in}/photo.png --task colorize -o {in}/photo.png", "also an input"),
    C("batch-output-dir-is-input-dir", "batch --input-dir {in}/clean --output-dir {in}/clean --task colorize",
      "is the --input-dir"),
    # cs --samples / --uncertainty
    C("cs-samples-negative", "cs {in}/noisy.npz --samples -3 -o {out}/r.png", "--samples must be between 0"),
    C("cs-samples-absurd", "cs {in}/noisy.npz --samples 1000000000 -o {out}/r.png", "--samples must be between 0"),
    C("cs-uncertainty-under-a-file", "cs {in}/noisy.npz --samples 4 --uncertainty {in}/photo.png/std.png -o {out}/r.png",
      "std.png", "not a folder"),
    C("cs-uncertainty-read-only", "cs {in}/noisy.npz --samples 4 --uncertainty {out}/ro/std.png -o {out}/r.png",
      "ro/std.png", "Read-only"),
    C("cs-uncertainty-is-the-output", "cs {in}/noisy.npz --samples 4 --uncertainty {out}/r.png -o {out}/r.png",
      "same file"),
    C("device-unknown", "colorize {in}/photo.png --device toaster -o {out}/r.png", "--device"),
]


def _extra(case: CliCase) -> list:
    """The tiny prior (and one solver step, for the sub-commands that solve)."""
    if not case.tiny:
        return []
    return list(TINY[:2]) if case.argv[0] == "degrade" else list(TINY)


@pytest.fixture
def read_only(monkeypatch):
    """Folders named ``ro`` behave as on a read-only file system: creating a file there fails
    with EROFS, as mkstemp does on a read-only mount (tests may run as root, who ignores modes)."""
    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        folder = Path(kwargs.get("dir") or (args[2] if len(args) > 2 else "."))
        if "ro" in folder.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(folder / "x.tmp"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input(case, inputs, tmp_path, capsys, monkeypatch, read_only):
    out = tmp_path / "out"
    (out / "ro").mkdir(parents=True)
    clean = inputs / "clean"
    if not clean.exists():
        clean.mkdir()
        Image.open(inputs / "photo.png").save(clean / "a.png")
    monkeypatch.chdir(out)
    for k, v in case.env:
        monkeypatch.setenv(k, v.format(out=out))
    argv = [a.format(**{"in": inputs, "out": out}) for a in case.argv] + _extra(case)
    before = snapshot(inputs, out)
    rc, stdout, err = run(capsys, argv)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == case.rc, (rc, err)
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, err
    for needle in case.needles:
        assert needle in lines[0], lines[0]
    assert snapshot(inputs, out) == before, "files were written"
    assert stdout == "", f"a refused command prints nothing on stdout: {stdout!r}"


# ----------------------------------------------------------------------------- accepted, with a warning
WARN_CASES = [
    C("rgba-input", "inpaint {in}/rgba.png -o {out}/r.png", "transparent pixels", "--mask-from-alpha"),
    C("rgba-input-crop", "colorize {in}/rgba.png --fit crop -o {out}/r.png", "alpha channel is dropped"),
    C("mask-under-1-percent", "inpaint {in}/photo.png --mask {in}/sparse_mask.png -o {out}/r.png", "observes only 1 of 256"),
]


@pytest.mark.parametrize("case", WARN_CASES, ids=[c.id for c in WARN_CASES])
def test_cli_accepted_with_one_warning(case, inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    argv = [a.format(**{"in": inputs, "out": out}) for a in case.argv] + list(TINY) + ["--json"]
    rc, _, err = run(capsys, argv)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 0 and len(lines) == 1 and lines[0].startswith("warning:"), err
    for needle in case.needles:
        assert needle in lines[0], lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["r.png"]


def test_mask_from_alpha_holes_are_the_transparent_pixels(inputs, tmp_path, capsys):
    """The restored image keeps the opaque pixels exactly; only the transparent square changes."""
    out = tmp_path / "r.png"
    rc, _, err = run(capsys, ["inpaint", inputs / "rgba.png", "--mask-from-alpha", "-o", out, *TINY, "--quiet"])
    assert rc == 0 and err == ""
    rgba = np.asarray(Image.open(inputs / "rgba.png"))
    got = np.asarray(Image.open(out).convert("RGB"))
    opaque = rgba[..., 3] == 255
    assert np.array_equal(got[opaque], rgba[..., :3][opaque])
    assert not np.array_equal(got[~opaque], rgba[..., :3][~opaque])


def test_compare_into_read_only_place_writes_nothing_after_the_solve(inputs, tmp_path, capsys, monkeypatch):
    """A failure while writing (after the solve) leaves neither the image nor the figure."""
    out = tmp_path / "out"
    out.mkdir()
    from restore import figures

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(figures.Image.Image, "save", broken)
    rc, _, err = run(capsys, ["inpaint", inputs / "photo.png", "-o", out / "r.png", "--compare", out / "f.png",
                              *TINY, "--quiet"])
    assert rc == 1 and "No space left" in err and len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------- the Python API table
def _tiny():
    from priors import dcgan
    return dcgan.tiny()


@dataclass(frozen=True)
class ApiCase:
    """``call(G, x)`` must raise ``error`` whose message holds every needle; ``G`` is a tiny
    16x16 prior, ``x`` a (1, 3, 16, 16) image of it."""

    id: str
    call: Callable
    error: type
    needles: Tuple[str, ...]


def A(id, call, error, *needles) -> ApiCase:
    return ApiCase(id, call, error, needles)


def _solve(y, op, G, **kw):
    return restore.solve(y, op, G, progress=False, **{"method": "latent", "preset": "fast", "steps": 1, **kw})


D2 = Downsample(2)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
API_CASES: Sequence[ApiCase] = [
    A("y-a-list", lambda G, x: _solve([[0.5]], D2, G), TypeError, "y must be a torch tensor", "list"),
    A("y-integer", lambda G, x: _solve((D2(x) * 255).long(), D2, G), ValueError, "float tensor"),
    A("y-1d", lambda G, x: _solve(D2(x).flatten(), D2, G), ValueError, "(B, ...)"),
    A("y-wrong-shape", lambda G, x: _solve(x, D2, G), ValueError, "per-sample shape (3, 16, 16)", "(3, 8, 8)"),
    A("y-nan", lambda G, x: _solve(D2(x) * float("nan"), D2, G), ValueError, "NaN"),
    A("y-inf", lambda G, x: _solve(D2(x) + float("inf"), D2, G), ValueError, "inf"),
    A("method", lambda G, x: _solve(D2(x), D2, G, method="magic"), ValueError, "method", "latent"),
    A("preset", lambda G, x: _solve(D2(x), D2, G, preset="turbo"), ValueError, "preset", "fast"),
    A("option", lambda G, x: _solve(D2(x), D2, G, colour=3), TypeError, "unknown option", "colour"),
    A("option-value", lambda G, x: _solve(D2(x), D2, G, n_init=0), ValueError, "n_init"),
    A("steps-zero", lambda G, x: _solve(D2(x), D2, G, steps=0), ValueError, "steps must be >= 1"),
    A("steps-negative", lambda G, x: _solve(D2(x), D2, G, steps=-4), ValueError, "steps must be >= 1"),
    A("steps-absurd", lambda G, x: _solve(D2(x), D2, G, steps=10 ** 9), ValueError, "at most 100000"),
    A("steps-absurd-dgp", lambda G, x: _solve(D2(x), D2, G, method="dgp", steps=10 ** 9), ValueError, "at most 100000"),
    A("steps-float", lambda G, x: _solve(D2(x), D2, G, steps=2.5), TypeError, "steps must be an int"),
    A("steps-str", lambda G, x: _solve(D2(x), D2, G, steps="10"), TypeError, "steps must be an int"),
    A("seed-str", lambda G, x: _solve(D2(x), D2, G, seed="abc"), TypeError, "seed must be an int"),
    A("operator-not-callable", lambda G, x: _solve(D2(x), 5, G), TypeError, "operator must be a callable"),
    A("operator-prior-mismatch", lambda G, x: _solve(Downsample(2)(torch.rand(1, 3, 32, 32)), D2, G), ValueError,
      "do not fit"),
    A("operator-wrong-image-shape", lambda G, x: _solve(torch.rand(1, 1, 8, 8), Mask(torch.ones(1, 1, 8, 8)), G),
      ValueError, "do not fit"),
    A("all-zero-mask", lambda G, x: _solve(x, Mask(torch.zeros(1, 1, 16, 16)), G), ValueError, "observes nothing",
      "sample(s) [0]"),
    A("all-zero-mask-one-sample", lambda G, x: _solve(x.repeat(2, 1, 1, 1), Mask(torch.stack(
        [torch.ones(1, 16, 16), torch.zeros(1, 16, 16)])), G), ValueError, "sample(s) [1]"),
    A("prior-not-a-generator", lambda G, x: _solve(D2(x), D2, torch.nn.Identity()), TypeError, "priors.Generator",
      "priors.wrap"),
    A("device-unknown", lambda G, x: _solve(D2(x), D2, G, device="toaster"), ValueError, "device", "toaster"),
    A("callbacks-not-callables", lambda G, x: _solve(D2(x), D2, G, callbacks=[5]), TypeError, "callbacks"),
    A("loss-unknown", lambda G, x: _solve(D2(x), D2, G, loss="nope"), ValueError, "unknown loss", "mse"),
    A("class-without-conditional-prior", lambda G, x: _solve(D2(x), D2, G, optimize_class=True), ValueError,
      "class-conditional"),
    A("c-wrong-batch", lambda G, x: _solve(D2(x), D2, G, c=torch.zeros(3)), ValueError, "c must be a tensor"),
    A("metric-reduction", lambda G, x: restore.metrics.psnr(x, x, reduction="sum"), ValueError, "reduction"),
    A("load-unknown-name", lambda G, x: priors.load("dcgan-digiface65"), ValueError, "unknown model",
      "dcgan-digiface64"),
    A("load-missing-path", lambda G, x: priors.load("/no/such/G.pth", family="dcgan"), ValueError, "/no/such/G.pth"),
    A("load-unknown-family", lambda G, x: priors.load(__file__, family="foo"), ValueError, "unknown family", "dcgan"),
    A("load-not-a-path", lambda G, x: priors.load(123), TypeError, ""),
    A("load-missing-path-no-family", lambda G, x: priors.load("/no/such/G.pth"), ValueError,
      "no such checkpoint file", "/no/such/G.pth"),
    A("load-not-a-checkpoint", lambda G, x: priors.load(__file__, family="dcgan"), ValueError, "cannot load",
      "test_bad_inputs.py"),
    A("load-not-a-checkpoint-detected", lambda G, x: priors.load(__file__), ValueError, "test_bad_inputs.py"),
    # a path without family: the family is detected from the keys (priors/detect.py; tests/test_detect.py)
    A("load-unknown-layout", lambda G, x: priors.load(FIXTURES / "pggan/pggan_tiny32_reference.pt"), ValueError,
      "matches no supported generator layout", "Looked for: biggan", "stylegan2 (rosinality)", "mlp (MLP)"),
    A("load-discriminator", lambda G, x: priors.load(FIXTURES / "biggan/bgp/D.pth"), ValueError,
      "looks like a discriminator", "pass the generator's file"),
    A("load-folder-without-checkpoint", lambda G, x: priors.load(FIXTURES / "pggan"), ValueError,
      "folder without pytorch_model.bin + config.json", "G_ema.pth"),
    A("load-folder-wrong-family", lambda G, x: priors.load(FIXTURES / "biggan/deep", family="pggan"), ValueError,
      "only family 'biggan' loads a folder"),
    A("load-wrong-family", lambda G, x: priors.load(FIXTURES / "pggan/pggan_gandissect16.pth", family="dcgan"),
      ValueError, "looks like family 'pggan'", "pass family='pggan'"),
    A("load-wrong-family-biggan", lambda G, x: priors.load(FIXTURES / "pggan/pggan_gandissect16.pth",
                                                            family="biggan"), ValueError, "config.json", "'pggan'"),
    A("load-wrong-family-weights-only", lambda G, x: priors.load(FIXTURES / "stylegan2/tiny_rosinality.pt",
                                                                  family="mlp"), ValueError,
      "objects other than tensors", "looks like family 'stylegan2'"),
    A("load-wrong-family-unknown-layout", lambda G, x: priors.load(FIXTURES / "pggan/pggan_tiny32_reference.pt",
                                                                    family="biggan"), ValueError, "config.json"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_bad_input(case):
    G = _tiny()
    with torch.no_grad():
        x = G(G.sample_latents(1, seed=0)).clamp(0, 1)
    calls = []
    hooks = [m.register_forward_pre_hook(lambda *_: calls.append(1)) for m in G.modules()]
    try:
        with pytest.raises(case.error) as err:
            case.call(G, x)
    finally:
        for h in hooks:
            h.remove()
    for needle in case.needles:
        assert needle in str(err.value), str(err.value)
    assert str(err.value).strip(), "an error needs a message"
    assert calls == [], "the generator ran before the error"
