"""benchmarks/real_data.py and real.py: the real-image fixtures, their splits, README and options."""
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.append(str(BENCH))  # after the repo root, so benchmarks/operators.py does not shadow the package
import real_data  # noqa: E402


def test_fixture_counts_splits_and_sizes():
    ind, ind_names = real_data.load_real("in-domain")
    ood, ood_names = real_data.load_real("out-of-domain")
    assert ind.shape[0] >= 16 and ood.shape[0] >= 8 and ind.shape[1:] == (3, 64, 64)
    assert float(ind.min()) >= 0 and float(ind.max()) <= 1
    for domain in real_data.DOMAINS:
        dev = set(real_data.load_real(domain, split="dev")[1])
        held = set(real_data.load_real(domain, split="heldout")[1])
        assert dev and held and not dev & held and len(dev | held) == len(real_data.load_real(domain)[1])
    small, names = real_data.load_real("in-domain", split="heldout", n=3, size=32)
    assert small.shape == (3, 3, 32, 32) and all("heldout" in n for n in names)
    assert real_data.is_gray(ood).sum() >= 1 and not bool(real_data.is_gray(ind).any())


def test_readme_names_every_fixture():
    readme = (real_data.DATA / "README.md").read_text()
    for f in (real_data.DATA / "out-of-domain").glob("*.png"):
        assert f"`{f.stem}`" in readme, f.name
    sources = {"digiface-mosaic": "sx-data-narrow.jpg", "digiface-id1": "variety_id1.jpg",
               "digiface-id2": "variety_id2.jpg"}
    for f in (real_data.DATA / "in-domain").glob("*.png"):
        name = f.stem.split("-", 2)[2].rsplit("-r", 1)[0]
        assert sources[name] in readme, f.name
    assert (real_data.DATA / "in-domain" / "LICENSE-R-UDA.txt").is_file()


def test_tasks_build_and_bad_names_raise():
    x = torch.rand(2, 3, 64, 64)
    for task in real_data.TASKS:
        op = real_data.build_task(task, 64)
        assert op(x).shape[0] == 2 and set(real_data.BASELINES[task])
    with pytest.raises(ValueError, match="sr4"):
        real_data.build_task("sr3", 64)
    with pytest.raises(ValueError, match="divisible"):
        real_data.build_task("sr8", 60)
    with pytest.raises(ValueError, match="in-domain"):
        real_data.load_real("faces")


def test_solve_opt_parsing():
    sys.path.insert(0, str(BENCH.parent))
    import real  # noqa: E402

    opts = real.parse_solve_opts(["consistency=project", "dgp:steps=20", "lr=0.1"], ["mgan", "dgp"])
    assert opts == {"mgan": {"consistency": "project", "lr": 0.1}, "dgp": {"consistency": "project", "steps": 20,
                                                                         "lr": 0.1}}
    with pytest.raises(SystemExit):
        real.parse_solve_opts(["nope"], ["mgan"])
    with pytest.raises(SystemExit):
        real.parse_solve_opts(["foo:x=1"], ["mgan"])
