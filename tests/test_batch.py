"""``ganrestore batch``: single process, resume, kill -9 then resume, and a 2-rank gloo run.

Everything uses a tiny random DCGAN (16x16 RGB): ``priors.dcgan:tiny`` in-process, and the same
network saved as a tutorial-layout checkpoint (``--prior FILE --family dcgan``) for torchrun.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restore import manifest
from restore.batch import BatchConfig, list_inputs, run_batch
from restore.io import InputError, load_image
from restore.tasks import TaskOptions

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, n: int, size: int = 16) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    return sorted(folder.iterdir())


def config(tmp_path, **kw) -> BatchConfig:
    base = dict(input_dir=str(tmp_path / "in"), output_dir=str(tmp_path / "out"), task=TaskOptions("colorize"),
                prior="priors.dcgan:tiny", simulate=True, batch_size=3, method="latent", preset="fast",
                steps=2, device="cpu")
    base.update(kw)
    return BatchConfig(**base)


def manifest_lines(out: Path) -> list:
    text = (out / manifest.MANIFEST).read_text()
    assert text.endswith("\n")
    return [json.loads(ln) for ln in text.splitlines()]


def check_complete(out: Path, n: int) -> list:
    """Every input has exactly one ok line, its image is a valid 16x16 PNG, nothing else is left."""
    lines = manifest_lines(out)
    names = [Path(r["input"]).name for r in lines]
    assert len(names) == len(set(names)) == n
    assert all(r["status"] == "ok" for r in lines)
    for r in lines:
        assert load_image(r["output"]).shape == (1, 3, 16, 16)
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".") or p.name.startswith("manifest.rank")]
    assert leftovers == []
    return lines


@pytest.fixture(autouse=True)
def _no_torchrun_env(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)


@pytest.mark.parametrize("task", ["colorize", "inpaint", "superres", "cs"])
def test_single_process_simulate_then_resume(tmp_path, task):
    make_inputs(tmp_path / "in", 5)
    opts = TaskOptions(task, factor=2, m=60, mask_kind="random")
    stats = run_batch(config(tmp_path, task=opts))
    assert stats["ok"] == stats["total"] == 5 and stats["solved"] == 5 and stats["failed"] == []
    lines = check_complete(tmp_path / "out", 5)
    assert all(set(r["metrics"]) == {"psnr", "ssim"} and r["seconds"] > 0 and "seed" in r for r in lines)
    baseline = {"inpaint": "biharmonic", "superres": "bicubic", "colorize": "gray copy", "cs": "pseudo-inverse"}[task]
    assert all(r["baseline"]["name"] == baseline and set(r["baseline"]) == {"name", "psnr", "ssim"} for r in lines)
    assert all(r["baseline"]["psnr"] != r["metrics"]["psnr"] for r in lines)
    again = run_batch(config(tmp_path, task=opts))
    assert again["solved"] == 0 and again["skipped"] == 5
    assert manifest_lines(tmp_path / "out") == lines


def test_observations_without_truth_and_errors_recorded(tmp_path):
    make_inputs(tmp_path / "in", 3, size=8)  # low-resolution observations for superres x2
    (tmp_path / "in" / "broken.png").write_text("not a png")
    stats = run_batch(config(tmp_path, task=TaskOptions("superres", factor=2), simulate=False))
    assert stats["ok"] == 3 and stats["failed"] == ["broken.png"]
    lines = {Path(r["input"]).name: r for r in manifest_lines(tmp_path / "out")}
    assert "metrics" not in lines["img00.png"] and lines["broken.png"]["status"] == "error"
    assert "cannot read" in lines["broken.png"]["error"]
    (tmp_path / "in" / "broken.png").unlink()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / "broken.png")
    stats = run_batch(config(tmp_path, task=TaskOptions("superres", factor=2), simulate=False))
    assert stats["solved"] == 1 and stats["failed"] == []  # the failed input is retried, the rest skipped
    check_complete(tmp_path / "out", 4)


@pytest.mark.parametrize("change,needle", [
    (dict(task=TaskOptions("superres", factor=2)), "task.task 'colorize' -> 'superres'"),
    (dict(seed=5), "seed 0 -> 5"),
    (dict(prior="priors.mlp:tiny"), "prior 'priors.dcgan:tiny' -> 'priors.mlp:tiny'"),
])
def test_resuming_with_other_problem_options_is_refused(tmp_path, change, needle):
    make_inputs(tmp_path / "in", 2)
    assert run_batch(config(tmp_path))["ok"] == 2
    with pytest.raises(InputError, match="holds a run with other options") as err:
        run_batch(config(tmp_path, **change))
    assert needle in str(err.value) and "new --output-dir" in str(err.value)
    again = run_batch(config(tmp_path, steps=3, batch_size=1, method="mgan"))  # solver knobs may change
    assert again["skipped"] == 2 and again["solved"] == 0


def test_partial_line_and_stale_shards_are_repaired(tmp_path):
    make_inputs(tmp_path / "in", 4)
    out = tmp_path / "out"
    out.mkdir()
    good = dict(input=str(tmp_path / "in" / "img00.png"), output=str(out / "img00.png"), status="ok", seconds=1.0, seed=0)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(out / "img00.png")
    (out / "manifest.rank0.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n" + '{"input": "img01.pn')
    (out / "manifest.rank3.jsonl").write_text('{"input": "img02.png", "status": "ok", "out')  # a dead rank's half line
    stats = run_batch(config(tmp_path))
    assert stats["solved"] == 3 and stats["skipped"] == 1
    check_complete(out, 4)


def test_list_inputs_errors(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        list_inputs(tmp_path / "none", "inpaint")
    (tmp_path / "e").mkdir()
    with pytest.raises(InputError, match="no inputs"):
        list_inputs(tmp_path / "e", "inpaint")
    make_inputs(tmp_path / "d", 1)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "d" / "img00.jpg")
    with pytest.raises(InputError, match="rename one"):
        list_inputs(tmp_path / "d", "inpaint")


def test_manifest_dedupe_prefers_success():
    recs = [dict(input="a/x.png", status="ok", n=1), dict(input="b/x.png", status="error", n=2),
            dict(input="y.png", status="error", n=3), dict(input="y.png", status="ok", n=4)]
    best = manifest.dedupe(recs)
    assert best["x.png"]["n"] == 1 and best["y.png"]["n"] == 4


def _save_tiny_checkpoint(path: Path) -> None:
    """The tiny DCGAN as a PyTorch-tutorial state dict (``main.<i>.*``), loadable with --family dcgan."""
    from priors import dcgan

    G, sd, i = dcgan.tiny(), {}, 0
    for block in G.blocks:
        for layer in block:
            for k, v in layer.state_dict().items():
                sd[f"main.{i}.{k}"] = v.clone()
            i += 1
    torch.save(sd, path)


def _batch_argv(tmp_path, *extra):
    return ["batch", "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"),
            "--task", "inpaint", "--mask-kind", "random", "--simulate", "--method", "latent",
            "--preset", "fast", "--device", "cpu", "--quiet", *extra]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")


def test_kill_then_resume(tmp_path):
    n = 12
    make_inputs(tmp_path / "in", n)
    argv = [sys.executable, "-m", "restore.cli"] + _batch_argv(tmp_path, "--prior", "priors.dcgan:tiny",
                                                                "--batch-size", "1", "--steps", "60")
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shard = tmp_path / "out" / "manifest.rank0.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if shard.exists() and len(manifest.read_lines(shard)) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed: make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = manifest.read_lines(shard)
    assert 2 <= len(done) < n
    for r in done:  # whatever a line says is done is a complete image
        assert load_image(r["output"]).shape == (1, 3, 16, 16)
    rerun = subprocess.run(argv[:-4] + ["--batch-size", "4", "--steps", "2", "--json"], env=_env(),
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["skipped"] == len(done) and report["solved"] == n - len(done)
    check_complete(tmp_path / "out", n)


def test_two_rank_gloo_torchrun(tmp_path):
    n = 7
    make_inputs(tmp_path / "in", n)
    ckpt = tmp_path / "tiny-dcgan.pt"
    _save_tiny_checkpoint(ckpt)
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "restore.cli"] + _batch_argv(tmp_path, "--prior", str(ckpt), "--family", "dcgan",
                                               "--batch-size", "2", "--steps", "2", "--json")
    proc = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["world_size"] == 2 and report["ok"] == n
    lines = check_complete(tmp_path / "out", n)
    ranks = {Path(r["input"]).name: r["rank"] for r in lines}
    assert ranks == {f"img{i:02d}.png": i % 2 for i in range(n)}  # disjoint shares by sorted index
