"""benchmarks/speed_stylegan2.py: its code paths (fp32 and bf16 autocast, every method, DGP
batched vs sequential) run end to end on a tiny CPU StyleGAN2, and it refuses CPU runs without
``--allow-cpu``."""
import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed_stylegan2.py"
TINY = ["--device", "cpu", "--allow-cpu", "--resolution", "16", "--style-dim", "16", "--n-mlp", "2",
        "--max-channels", "8", "--steps", "2", "--n-init", "20", "--dgp-batch", "2"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("speed_stylegan2", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(bench, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(bench, "RESULTS", tmp_path_factory.mktemp("results"))
    return bench.main(TINY + ["--write"]), bench.RESULTS


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("row", ["bare G fwd+bwd", "latent", "mgan N=20", "dgp"])
def test_rate_rows(report, dtype, row):
    text, _ = report
    match = re.search(rf"^\| {dtype} \| {re.escape(row)} \| (\d+) \| ([0-9.]+) \| (\d+)% \|$", text, re.M)
    assert match, f"no {dtype} / {row} row in\n{text}"
    assert int(match.group(1)) >= 2 and float(match.group(2)) > 0


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_dgp_batching_and_verdicts(report, dtype):
    text, results = report
    assert re.search(rf"^\| {dtype} \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \|$", text, re.M)
    assert re.search(rf"^Targets, {dtype} on cpu: mgan at \d+% .*(met|NOT met)\)\.$", text, re.M)
    assert "not the issue's GPU StyleGAN2-256 rows" in text
    assert (results / "speed_stylegan2.md").read_text() == text


def test_cpu_without_allow_cpu_refuses(bench, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--device", "cpu", "--write"])
    assert info.value.code == 2
    assert "not measured" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--dtype", "fp16"], ["--steps", "1"], ["--n-init", "4"]])
def test_bad_arguments(bench, argv):
    with pytest.raises(SystemExit):
        bench.parse_args(["--device", "cpu"] + argv)


@pytest.mark.gpu
def test_cuda_code_path(bench):
    text = bench.main(["--device", "cuda"] + TINY[2:])
    for dtype in ("fp32", "bf16"):
        assert re.search(rf"^\| {dtype} \| mgan N=20 \| \d+ \| [0-9.]+ \| \d+% \|$", text, re.M)
    assert "Targets, bf16 on cuda" in text
