"""The ``ganrestore`` command line, run in-process on a tiny random DCGAN (``priors.dcgan:tiny``,
16x16 RGB) with a handful of steps; one subprocess checks the installed entry point."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restore.cli import main
from restore.io import load_image, load_observation

TINY = ["--prior", "priors.dcgan:tiny", "--steps", "3", "--preset", "fast", "--quiet"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def photo(tmp_path):
    """A 40x30 colour photo (not the prior's size, to exercise --fit)."""
    arr = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(arr).save(path)
    return path


def run(capsys, *argv):
    """``(exit status, stdout, stderr)`` of ``ganrestore *argv`` run in this process."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors and --version
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, *needles):
    assert rc not in (0, None), err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error" in lines[0]
    for n in needles:
        assert n in lines[0], lines[0]


def test_version_and_help(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out.startswith("ganrestore ")
    rc, out, _ = run(capsys)
    assert rc == 0 and all(c in out for c in ("inpaint", "superres", "colorize", "cs", "degrade", "demo", "models", "batch"))


@pytest.mark.parametrize("task,extra", [
    ("inpaint", ["--mask-kind", "random", "--keep", "0.3"]),
    ("inpaint", ["--mask-kind", "box", "--size", "6"]),
    ("inpaint", ["--mask-kind", "free-form"]),
    ("superres", ["--factor", "2"]),
    ("colorize", []),
])
def test_restore_image_with_compare_and_json(capsys, tmp_path, photo, task, extra):
    out, fig = tmp_path / "out.png", tmp_path / "fig.png"
    rc, stdout, err = run(capsys, task, photo, *extra, *TINY, "-o", out, "--compare", fig,
                          "--truth", photo, "--json", "--method", "latent", "--fit", "crop")
    assert rc == 0, err
    report = json.loads(stdout)
    assert report["output"] == str(out) and report["compare"] == str(fig)
    assert set(report["metrics"]) == {"psnr", "ssim"} and report["seconds"] >= 0
    assert report["options"]["method"] == "latent" and report["options"]["prior"] == "priors.dcgan:tiny"
    assert load_image(out).shape == (1, 3, 16, 16)
    assert Image.open(fig).size[0] > 16 * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png", "out.png", "photo.png"]


def test_human_output_and_resize_warning(capsys, tmp_path, photo):
    rc, out, err = run(capsys, "colorize", photo, "--prior", "priors.dcgan:tiny", "--steps", "2",
                       "--preset", "fast", "-o", tmp_path / "c.png", "--fit", "crop")
    assert rc == 0 and f"wrote {tmp_path / 'c.png'}" in out
    warn = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "40x30" in warn[0] and "16x16" in warn[0]


@pytest.mark.parametrize("task,extra", [("inpaint", ["--mask-kind", "random"]), ("superres", ["--factor", "4"]),
                                        ("colorize", []), ("cs", ["--m", "100", "--cs-kind", "srht"])])
def test_degrade_then_restore(capsys, tmp_path, photo, task, extra):
    obs = tmp_path / "obs.npz"
    rc, _, err = run(capsys, "degrade", photo, "--task", task, *extra, "--prior", "priors.dcgan:tiny",
                     "--seed", "7", "--noise-sigma", "0.01", "-o", obs, "--quiet")
    assert rc == 0, err
    y, spec, info = load_observation(obs)
    assert info["task"] == task and info["seed"] == 7 and spec["type"]
    rc, out, err = run(capsys, "cs" if task == "cs" else task, obs, *TINY, "-o", tmp_path / "r.png", "--json")
    assert rc == 0, err
    assert load_image(tmp_path / "r.png").shape == (1, 3, 16, 16)


def test_degrade_image_outputs_and_mask_file(capsys, tmp_path, photo):
    rc, _, err = run(capsys, "degrade", photo, "--task", "inpaint", "--mask-kind", "box", "--size", "8",
                     "--prior", "priors.dcgan:tiny", "-o", tmp_path / "obs.png", "--quiet")
    assert rc == 0, err
    mask = load_image(tmp_path / "obs_mask.png")
    assert mask.shape == (1, 1, 16, 16) and float(mask.mean()) == pytest.approx(1 - 64 / 256)
    rc, _, err = run(capsys, "inpaint", tmp_path / "obs.png", "--mask", tmp_path / "obs_mask.png", *TINY,
                     "-o", tmp_path / "r.png")
    assert rc == 0, err
    rc, _, err = run(capsys, "degrade", photo, "--task", "superres", "--factor", "2", "--prior",
                     "priors.dcgan:tiny", "-o", tmp_path / "lr.png", "--quiet")
    assert rc == 0 and load_image(tmp_path / "lr.png").shape == (1, 3, 8, 8)


@pytest.mark.parametrize("argv,needles", [
    (["inpaint", "{tmp}/missing.png"], ["missing.png", "not found"]),
    (["inpaint", "{photo}", "--prior", "no-such-prior"], ["unknown model", "dcgan-digiface64"]),
    (["inpaint", "{photo}", "--prior", "{photo}"], ["not a PyTorch checkpoint"]),
    (["inpaint", "{photo}", "--prior", "no_such_module:thing"], ["cannot import"]),
    (["superres", "{photo}", "--factor", "3"], ["--factor 3", "divide"]),
    (["superres", "{photo}", "--fit", "error"], ["40x30", "--fit resize"]),
    (["cs", "{photo}"], ["ganrestore degrade"]),
    (["inpaint", "{photo}", "--mask", "{tmp}/nomask.png"], ["mask file not found"]),
    (["inpaint", "{photo}", "--keep", "1.5"], ["--keep"]),
    (["colorize", "{photo}", "-o", "{tmp}/out.xyz"], ["unknown image suffix"]),
    (["colorize", "{photo}", "--device", "cuda:7"], ["--device"]),
    (["colorize", "{photo}", "--device", "toaster"], ["--device"]),
    (["cs", "{tmp}/bogus.npz"], ["not a ganrestore observation file"]),
    (["degrade", "{photo}", "--task", "cs", "-o", "{tmp}/y.png"], ["OUT.npz"]),
    (["superres", "{photo}", "--factor", "abc"], ["--factor"]),
    (["inpaint", "{photo}", "--method", "magic"], ["--method"]),
    (["batch", "--input-dir", "{tmp}/none", "--output-dir", "{tmp}/o", "--task", "colorize"], ["not a folder"]),
])
def test_user_errors_are_one_line(capsys, tmp_path, photo, argv, needles):
    np.savez(tmp_path / "bogus.npz", a=np.zeros(2))
    argv = [a.format(tmp=tmp_path, photo=photo) for a in argv]
    if argv[0] != "degrade" and "--prior" not in argv:
        argv += ["--prior", "priors.dcgan:tiny"]
    rc, _, err = run(capsys, *argv, "--quiet")
    assert_one_line_error(rc, err, *needles)
    assert not (tmp_path / "out.xyz").exists() and not (tmp_path / "y.png").exists()


@pytest.mark.parametrize("argv,needles", [
    (["inpaint", "{photo}", "--truth", "{tmp}/missing.png"], ["missing.png", "not found"]),
    (["degrade", "{photo}", "--task", "superres", "--noise-sigma", "-1", "-o", "{tmp}/y.png"], ["--noise-sigma"]),
    (["degrade", "{photo}", "--task", "cs", "--m", "999999", "-o", "{tmp}/y.npz"], ["--m"]),
])
def test_user_error_after_a_resize_warning_is_still_one_line(capsys, tmp_path, photo, argv, needles):
    """Without --quiet: the resize warning of an input read before the error is not printed."""
    argv = [a.format(tmp=tmp_path, photo=photo) for a in argv] + ["--prior", "priors.dcgan:tiny"]
    rc, _, err = run(capsys, *argv)
    assert_one_line_error(rc, err, *needles)
    assert "warning" not in err and not (tmp_path / "y.png").exists() and not (tmp_path / "y.npz").exists()


def test_warnings_still_show_on_success(capsys, tmp_path, photo):
    rc, _, err = run(capsys, "degrade", photo, "--task", "colorize", "--prior", "priors.dcgan:tiny",
                     "-o", tmp_path / "g.png")
    assert rc == 0 and err.splitlines() == ["warning: photo.png is 40x30; resized to 16x16 (centre crop 30x30) "
                                            "(use --fit error to refuse)"]


def test_debug_shows_the_traceback(capsys, tmp_path):
    rc, _, err = run(capsys, "inpaint", tmp_path / "missing.png", "--debug")
    assert rc == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("ganrestore inpaint: error:")


def test_offline_missing_weights_is_one_line(capsys, tmp_path, photo, monkeypatch):
    monkeypatch.setenv("GANRESTORE_OFFLINE", "1")
    monkeypatch.setenv("GANRESTORE_HOME", str(tmp_path / "cache"))
    rc, _, err = run(capsys, "inpaint", photo, "--quiet")
    assert_one_line_error(rc, err, "GANRESTORE_OFFLINE", "dcgan-digiface64")


def test_warnings_route_as_one_line_but_hide_torch_internal_deprecations(capsys, monkeypatch):
    import warnings
    from restore import cli

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    cli._route_warnings(quiet=False)
    torch_file = str(Path(torch.__file__).parent / "jit" / "_script.py")
    warnings.showwarning("`torch.jit.script` is deprecated.", FutureWarning, torch_file, 1)
    warnings.showwarning("old   option\n used", FutureWarning, "/somewhere/else.py", 1)
    warnings.showwarning("weights checksum note", UserWarning, torch_file, 1)
    assert capsys.readouterr().err.splitlines() == ["warning: old option used", "warning: weights checksum note"]


def test_python_spec_must_give_a_generator(capsys, tmp_path, photo):
    rc, _, err = run(capsys, "colorize", photo, "--prior", "torch.nn:Identity", "--quiet")
    assert_one_line_error(rc, err, "priors.Generator", "priors.wrap")


def test_models_lists_the_registry(capsys):
    rc, out, _ = run(capsys, "models")
    assert rc == 0 and "dcgan-digiface64" in out and "mlp-mnist28" in out
    rc, out, _ = run(capsys, "models", "--json")
    assert rc == 0 and "dcgan-digiface64" in {e["name"] for e in json.loads(out)}


def test_demo_pipeline_on_a_tiny_prior(tmp_path):
    """The demo's own code path (degrade four ways, restore, baselines, figure) on a tiny prior."""
    from priors import dcgan
    from restore.cli import demo

    G = dcgan.tiny()
    truth = G(G.sample_latents(1, seed=3)).detach()
    small = {"inpaint": dict(size=6), "cs": dict(m=200)}  # the demo's options, scaled to 16x16
    tasks = [demo.DemoTask(t.label, dataclasses.replace(t.options, **small.get(t.options.task, {})))
             for t in demo.DEMO_TASKS]
    rows = demo.demo_rows(G, truth, tasks=tasks, steps=3)
    assert [r["task"] for r in rows] == ["inpaint", "superres", "colorize", "cs"]
    assert all(np.isfinite(r["psnr"]) and np.isfinite(r["baseline_psnr"]) for r in rows)
    fig = demo._figure(rows, truth, tmp_path / "demo.png")
    assert Image.open(fig).size[1] > 4 * 64
    assert "pseudo-inverse" in demo._table(rows)


def test_entry_point_subprocess(tmp_path):
    """The real process: exit status and a single stderr line, no traceback."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "restore.cli", "superres", str(tmp_path / "nope.png")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert_one_line_error(proc.returncode, proc.stderr, "nope.png")


@pytest.mark.slow
@pytest.mark.network
def test_demo_end_to_end(capsys, tmp_path):
    """``ganrestore demo`` with the real default prior (downloads it once)."""
    rc, out, err = run(capsys, "demo", "-o", tmp_path / "demo.png", "--quiet", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert len(report["rows"]) == 4 and (tmp_path / "demo.png").exists()
