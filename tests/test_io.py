"""Image and observation I/O, fitting, figures and the built-in demo image."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from restore import io as rio
from restore.data import FACE_PATH, face
from restore.figures import Panel, comparison_image, psnr_caption, save_comparison
from restore.io import InputError, fit_image, load_image, load_observation, save_image, save_observation


def _rgb(h=12, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------ loading
@pytest.mark.parametrize("mode,channels", [("RGB", 3), ("L", 1), ("RGBA", 3), ("P", 3), ("I;16", 1), ("1", 1)])
def test_load_png_modes(tmp_path, mode, channels):
    arr = _rgb()
    img = Image.fromarray(arr).convert(mode) if mode != "I;16" else Image.fromarray((arr[..., 0].astype(np.uint16) * 257))
    path = tmp_path / "x.png"
    img.save(path)
    x = load_image(path)
    assert x.shape == (1, channels, 12, 10) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    if mode == "I;16":
        assert torch.allclose(x[0, 0], torch.from_numpy(arr[..., 0] / 255.0).float(), atol=1e-6)


def test_load_jpeg_and_channel_conversion(tmp_path):
    path = tmp_path / "x.jpg"
    Image.fromarray(_rgb(16, 16)).save(path, quality=95)
    rgb = load_image(path)
    gray = load_image(path, channels=1)
    assert rgb.shape == (1, 3, 16, 16) and gray.shape == (1, 1, 16, 16)
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(gray, luma, atol=1e-6)
    assert torch.equal(load_image(gray, channels=3), gray.repeat(1, 3, 1, 1))


@pytest.mark.parametrize("make", [
    lambda a: a,                                        # uint8 HWC
    lambda a: a.astype(np.float32) / 255.0,            # float HWC
    lambda a: a.astype(np.uint16) * 257,                # uint16 HWC
    lambda a: Image.fromarray(a),                       # PIL
    lambda a: torch.from_numpy(a).permute(2, 0, 1),     # uint8 tensor CHW
    lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255,  # float tensor BCHW
])
def test_load_in_memory_sources_agree(make):
    arr = _rgb()
    ref = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    assert torch.allclose(load_image(make(arr)), ref, atol=1e-6)


def test_load_bool_and_gray_arrays():
    assert load_image(np.eye(4, dtype=bool)).shape == (1, 1, 4, 4)
    assert load_image(np.zeros((5, 6))).shape == (1, 1, 5, 6)


@pytest.mark.parametrize("src,match", [
    (np.zeros((2, 3, 4, 5)), "shape"),
    (np.zeros((4, 4, 2)), "shape"),
    (np.full((4, 4), 2.0), r"\[0, 1\]"),
    (np.full((4, 4), np.nan), "NaN"),
    (np.zeros((4, 4), dtype=np.int64), "dtype"),
    (torch.zeros(2, 3, 4, 4), "shape"),
    (torch.zeros(1, 2, 4, 4), "channels"),
])
def test_load_bad_arrays(src, match):
    with pytest.raises(InputError, match=match):
        load_image(src)


def test_load_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found.*check the path"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="cannot read image .*PNG or JPEG"):
        load_image(bad)
    with pytest.raises(TypeError, match="path, PIL image, numpy array or tensor"):
        load_image(42)


# ------------------------------------------------------------------------------------ saving
@pytest.mark.parametrize("shape", [(1, 3, 9, 7), (3, 9, 7), (1, 1, 9, 7), (9, 7)])
def test_save_roundtrip_exact_8bit(tmp_path, shape):
    x = torch.randint(0, 256, shape).float() / 255
    path = save_image(x, tmp_path / "sub" / "out.png")
    back = load_image(path)
    assert torch.allclose(back.reshape(x.shape), x, atol=1e-6)
    assert sorted(os.listdir(tmp_path / "sub")) == ["out.png"]  # no temporary left behind


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    save_image(torch.zeros(1, 3, 4, 4), path)
    before = path.read_bytes()

    def broken_save(self, fp, format=None, **kw):
        with open(fp, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.ones(1, 3, 4, 4), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_files_get_umask_permissions_not_mkstemp_private(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_image(torch.zeros(1, 3, 4, 4), tmp_path / "out.png")
        assert path.stat().st_mode & 0o777 == 0o644
        os.chmod(path, 0o640)  # an existing file keeps its mode when replaced
        save_image(torch.ones(1, 3, 4, 4), path)
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_save_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="unknown image suffix"):
        save_image(torch.zeros(1, 3, 4, 4), tmp_path / "x.xyz")
    with pytest.raises(ValueError, match="batch"):
        save_image(torch.zeros(2, 3, 4, 4), tmp_path / "x.png")
    save_image(torch.rand(1, 3, 8, 8), tmp_path / "x.jpg")  # JPEG works too
    assert load_image(tmp_path / "x.jpg").shape == (1, 3, 8, 8)


# ------------------------------------------------------------------------------------ fitting
def test_fit_same_size_is_identity():
    x = torch.rand(1, 3, 8, 8)
    msgs = []
    assert fit_image(x, 8, warn=msgs.append) is x and msgs == []


@pytest.mark.parametrize("hw,target", [((40, 60), 16), ((60, 40), 16), ((8, 8), 32), ((50, 50), (10, 20))])
def test_fit_resize_crops_centre_and_warns_once(hw, target):
    x = torch.rand(1, 3, *hw)
    msgs = []
    out = fit_image(x, target, warn=msgs.append, what="photo.jpg")
    th, tw = (target, target) if isinstance(target, int) else target
    assert out.shape == (1, 3, th, tw)
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert len(msgs) == 1 and "\n" not in msgs[0] and "photo.jpg" in msgs[0] and "--fit error" in msgs[0]


def test_fit_resize_keeps_the_centre():
    x = torch.zeros(1, 1, 20, 40)
    x[..., :, 10:30] = 1.0  # the centred 20x20 square is white, the sides black
    out = fit_image(x, 10, warn=lambda m: None)
    assert torch.allclose(out, torch.ones_like(out), atol=1e-5)


def test_fit_error_mode_names_both_sizes():
    with pytest.raises(InputError, match=r"60x40 pixels but 16x16 is needed.*--fit resize"):
        fit_image(torch.rand(1, 3, 40, 60), 16, mode="error")
    with pytest.raises(ValueError, match="'resize' or 'error'"):
        fit_image(torch.rand(1, 3, 40, 60), 16, mode="stretch")


# ------------------------------------------------------------------------------------ observations
def test_observation_roundtrip_nested_arrays(tmp_path):
    spec = {"type": "Composed", "ops": [{"type": "Mask", "mask": np.eye(3, dtype=np.uint8)},
                                        {"type": "X", "w": torch.arange(4.0), "t": (1, 2)}]}
    y = torch.rand(2, 7)
    path = save_observation(tmp_path / "obs.npz", y, spec, seed=5, task="cs", meta={"a": 1})
    y2, spec2, info = load_observation(path)
    assert torch.equal(y2, y)
    assert info == {"task": "cs", "seed": 5, "meta": {"a": 1}, "version": rio.OBSERVATION_VERSION}
    assert np.array_equal(spec2["ops"][0]["mask"], np.eye(3)) and spec2["ops"][0]["mask"].dtype == np.uint8
    assert np.array_equal(spec2["ops"][1]["w"], np.arange(4.0)) and spec2["ops"][1]["t"] == [1, 2]
    with np.load(path, allow_pickle=False) as data:  # readable without pickle
        assert json.loads(str(data["header"]))["seed"] == 5


@pytest.mark.parametrize("task", ["inpaint", "superres", "colorize", "cs"])
def test_observation_rebuilds_the_operator(tmp_path, task):
    from restore.tasks import TaskOptions, build_operator, from_spec

    op = build_operator(TaskOptions(task, m=40, mask_kind="random"), (3, 16, 16), seed=3)
    x = torch.rand(1, 3, 16, 16)
    save_observation(tmp_path / "o.npz", op(x), op.spec(), seed=3, task=task)
    y, spec, info = load_observation(tmp_path / "o.npz")
    assert info["task"] == task
    assert torch.allclose(from_spec(spec)(x), y, atol=1e-6)


def test_observation_errors(tmp_path):
    with pytest.raises(InputError, match="not found.*ganrestore degrade"):
        load_observation(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(InputError, match="not a ganrestore observation file"):
        load_observation(tmp_path / "other.npz")
    with pytest.raises(InputError, match=r"\.npz"):
        save_observation(tmp_path / "o.txt", torch.zeros(1, 2), {"type": "Grayscale"})


# ------------------------------------------------------------------------------------ figures, data
def test_comparison_figure(tmp_path):
    x = torch.rand(1, 3, 16, 16)
    rows = [[Panel("obs", x[:, :, ::4, ::4]), Panel("out", x, psnr_caption(x * 0.9, x)), Panel("cs", None, "40 values")],
            [Panel("gray", x[:, :1])]]
    img = comparison_image(rows, title="t", row_labels=["a", "b"], cell=64)
    assert img.mode == "RGB" and img.size[0] > 3 * 64 and img.size[1] > 2 * 64
    path = save_comparison(rows, tmp_path / "fig.png", cell=32)
    assert Image.open(path).size[0] > 3 * 32 and sorted(os.listdir(tmp_path)) == ["fig.png"]
    assert psnr_caption(x, x * 0 + x).startswith("PSNR inf") and psnr_caption(x, None) == ""
    assert psnr_caption(x * 0.5, x).endswith(" dB")
    with pytest.raises(ValueError, match="at least one panel"):
        comparison_image([])


def test_builtin_face():
    x = face()
    assert x.shape == (1, 3, 64, 64) and FACE_PATH.name == "face64.png"
    assert 0.2 < float(x.mean()) < 0.8 and float(x.std()) > 0.1  # a real picture, not blank
