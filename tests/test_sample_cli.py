"""``ganrestore cs --samples N --uncertainty STD.png`` on a tiny random DCGAN (16x16 RGB)."""
import json

import numpy as np
import pytest
from PIL import Image

from restore.cli import main
from restore.io import load_image

TINY = ["--prior", "priors.dcgan:tiny", "--steps", "3", "--preset", "fast", "--quiet", "--method", "latent"]


def run(capsys, *argv):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def obs(tmp_path, capsys):
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "photo.png")
    path = tmp_path / "y.npz"
    rc, _, err = run(capsys, "degrade", tmp_path / "photo.png", "--task", "cs", "--m", "100", "--prior",
                     "priors.dcgan:tiny", "--noise-sigma", "0.02", "-o", path, "--quiet")
    assert rc == 0, err
    return path


def test_samples_write_the_mean_and_a_normalized_std_map(capsys, tmp_path, obs):
    rc, out, err = run(capsys, "cs", obs, *TINY, "--samples", "4", "--uncertainty", tmp_path / "std.png",
                       "-o", tmp_path / "mean.png", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["uncertainty"] == str(tmp_path / "std.png")
    post = report["posterior"]
    assert post["samples"] == 4 and post["sigma"] == 0.02 and post["std_max"] > 0  # sigma read from the .npz
    assert load_image(tmp_path / "mean.png").shape == (1, 3, 16, 16)
    std = np.asarray(Image.open(tmp_path / "std.png"))
    assert std.shape[:2] == (16, 16) and std.max() == 255  # divided by its maximum


@pytest.mark.parametrize("extra, needle", [(["--samples", "4", "--sigma", "0"], "--sigma"),
                                           (["--uncertainty", "std.png"], "--samples N >= 2"),
                                           (["--samples", "4", "--method", "mgan"], "--method latent")])
def test_bad_sampling_options_are_one_line_errors(capsys, tmp_path, obs, extra, needle):
    rc, out, err = run(capsys, "cs", obs, *TINY, *extra, "-o", tmp_path / "mean.png")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "mean.png").exists()
