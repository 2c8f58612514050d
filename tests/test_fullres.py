"""The photo at its own resolution (restore.fullres, restore.blend, ``--fit full``, ``--region``).

Compositions are checked on a fixed stand-in for the prior's image (no solve); one API call and
the CLI runs use the tiny random DCGAN (16x16) for two steps."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from operators import Downsample, Grayscale, Mask, masks
from restore.blend import keep_luma, make_consistent, push_pull, resize
from restore.cli import main
from restore.fullres import Region, compose, paste, restore_photo, to_prior
from restore.io import load_image

R = 16  # the tiny prior's resolution
TINY = ["--prior", "priors.dcgan:tiny", "--steps", "2", "--preset", "fast", "--method", "latent", "--quiet"]
SIZES = [(75, 100), (53, 37)]  # (H, W): landscape 100x75 and portrait 37x53
REGIONS = [None, Region(0, 30, 24, 23), Region(5, 4, 20, 26)]  # whole, at the left/bottom border, inside


def smooth_photo(h, w, seed=0):
    """A smooth random colour image (1, 3, h, w) in [0, 1]: coarse noise upsampled."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def observe(task, h, w):
    """``(y, operator)`` at full resolution for a (h, w) photo (superres: y is h x w, out 2x)."""
    x = smooth_photo(h * (2 if task == "superres" else 1), w * (2 if task == "superres" else 1))
    if task == "inpaint":
        op = Mask(masks.random_pixels((h, w), keep=0.3, seed=1))
        return x, op
    op = Downsample(2) if task == "superres" else Grayscale()
    return op(x), op


def outside(region, shape):
    """0/1 (1, 1, H, W): 1 outside ``region``."""
    m = torch.ones(1, 1, *shape[-2:])
    region.crop(m).zero_()
    return m.bool()


@pytest.mark.parametrize("region", REGIONS, ids=["whole", "border", "inside"])
@pytest.mark.parametrize("hw", SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
@pytest.mark.parametrize("task", ["inpaint", "superres", "colorize"])
def test_composition_keeps_the_observation_at_full_resolution(task, hw, region):
    y, op = observe(task, *hw)
    y_p, op_p, geo = to_prior(y, op, R, region)
    prior_image = torch.rand(1, 3, R, R, generator=torch.Generator().manual_seed(2))
    assert op_p(prior_image).shape == y_p.shape
    out = compose(y, op, prior_image, geo)
    f = 2 if task == "superres" else 1
    assert out.shape == (1, 3, hw[0] * f, hw[1] * f)
    if task == "inpaint":
        seen = op.mask.bool().expand_as(y)
        assert torch.equal(out[seen], y[seen])  # every observed pixel, bit for bit
        assert float(out.min()) >= 0 and float(out.max()) <= 1
    elif task == "colorize":
        residual = float((Grayscale()(out) - y).abs().max())
        assert residual < 1e-6, residual  # luma kept (measured ~1e-7), chroma only from the prior
        assert float(out.min()) >= -1e-6 and float(out.max()) <= 1 + 1e-6
    else:
        residual = float((op(out) - y).abs().max())
        assert residual < 1e-5, residual  # measured ~1e-6
    if region is not None:
        far = outside(geo.out_region, out.shape)
        if task == "inpaint":
            base = y
        elif task == "colorize":
            base = y.expand(-1, 3, -1, -1)
        else:
            base = make_consistent(resize(y, out.shape[-2:]).clamp(0, 1), y, op.A, op.A_adjoint)
        assert torch.equal(out.masked_select(far), base.expand_as(out).masked_select(far))


def test_prior_problem_is_letterboxed_and_the_prior_image_fills_the_region():
    y, op = observe("colorize", 75, 100)
    y_p, op_p, geo = to_prior(y, op, R)
    assert (geo.box.w, geo.box.h) == (16, 12) and (geo.box.x, geo.box.y) == (0, 2)
    assert y_p.shape == (1, 1, R, R) and float(y_p[..., :2, :].abs().max()) == 0  # margins unobserved
    assert float(op_p(torch.ones(1, 3, R, R))[..., :2, :].abs().max()) == 0
    assert geo.upscale == pytest.approx(100 / 16)
    square = to_prior(y[..., :16, :16], op, R)[1]
    assert isinstance(square, Grayscale)  # a region of the prior's own size: the plain operator


def test_push_pull_keeps_values_and_fills_holes_within_their_range():
    g = torch.Generator().manual_seed(0)
    values = torch.rand(1, 3, 37, 53, generator=g)
    weight = (torch.rand(1, 1, 37, 53, generator=g) < 0.1).float()
    weight[..., 10:30, 10:40] = 0  # a large hole too
    out = push_pull(values, weight)
    seen = weight.bool().expand_as(values)
    assert torch.equal(out[seen], values[seen])
    assert float(out.min()) >= float(values[seen].min()) - 1e-6 and float(out.max()) <= float(values[seen].max()) + 1e-6


def test_keep_luma_shrinks_chroma_never_luma_at_the_range_ends():
    gray = torch.tensor([0.0, 1.0, 0.5, 0.98]).view(1, 1, 1, 4)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 1, 4)
    out = keep_luma(gray, red, Grayscale().weights)
    assert float(out.min()) >= -1e-6 and float(out.max()) <= 1 + 1e-6
    assert float((Grayscale()(out) - gray).abs().max()) < 1e-6
    assert out[0, 0, 0, 2] > out[0, 1, 0, 2]  # mid-gray keeps a red hue


def test_paste_feathers_inside_and_leaves_the_outside_unchanged():
    photo, patch = torch.zeros(1, 3, 20, 30), torch.ones(1, 3, 8, 10)
    out = paste(photo, patch, Region(0, 6, 10, 8), feather=2)
    assert torch.equal(out.masked_select(outside(Region(0, 6, 10, 8), out.shape)), torch.zeros(20 * 30 * 3 - 240))
    assert float(out[0, 0, 9, 0]) == 1.0  # the photo's left border: no ramp there
    assert float(out[0, 0, 6, 5]) == 0.25 and float(out[0, 0, 9, 9]) == 0.25  # ramps on the inner sides


@pytest.mark.parametrize("text,needle", [("1,2,3", "X,Y,W,H"), ("1,2,0,4", ">= 1"), ("a,b,c,d", "X,Y,W,H")])
def test_region_parse_errors(text, needle):
    with pytest.raises(ValueError, match=needle):
        Region.parse(text)


def test_region_outside_the_photo_is_refused_before_any_work():
    y, op = observe("colorize", 53, 37)
    with pytest.raises(ValueError, match="37x53"):
        to_prior(y, op, R, Region(30, 0, 10, 10))


def test_restore_photo_with_a_region_and_one_detail_warning():
    from priors import dcgan

    y, op = observe("superres", 53, 37)
    warnings = []
    res = restore_photo(y, op, dcgan.tiny(), region="10,30,27,23", method="latent", preset="fast", steps=2,
                        seed=0, progress=False, warn=warnings.append)
    assert res.image.shape == (1, 3, 106, 74) and res.prior_image.shape == (1, 3, R, R)
    assert float((op(res.image) - y).abs().max()) < 1e-5
    assert len(warnings) == 1 and "upsampled 3.4x to 54x46" in warnings[0]


# ------------------------------------------------------------------------------------ CLI
def run(capsys, *argv):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def save(tmp_path, x, name):
    arr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = tmp_path / name
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)
    return path, load_image(path)


@pytest.mark.parametrize("hw", SIZES, ids=lambda s: f"{s[1]}x{s[0]}")
@pytest.mark.parametrize("task", ["inpaint", "superres", "colorize"])
def test_cli_outputs_have_the_photo_size_and_keep_the_observation(capsys, tmp_path, task, hw):
    h, w = hw
    photo, x = save(tmp_path, smooth_photo(h, w), "photo.png")
    extra = {"inpaint": ["--mask-kind", "box", "--size", "12"], "superres": ["--factor", "2"], "colorize": []}[task]
    rc, _, err = run(capsys, task, photo, *extra, *TINY, "-o", tmp_path / "out.png")
    assert rc == 0, err
    out = load_image(tmp_path / "out.png")
    f = 2 if task == "superres" else 1
    assert out.shape == (1, 3, h * f, w * f)
    if task == "inpaint":
        seen = torch.as_tensor(masks.box((h, w), size=12)).bool().expand_as(x)
        assert torch.equal(out[seen], x[seen])  # 8-bit in, the same 8 bits out
    elif task == "colorize":
        assert float((Grayscale()(out) - Grayscale()(x)).abs().max()) <= 0.5 / 255 + 1e-6  # 8-bit rounding only
    else:
        err = (Downsample(2)(out) - x).abs()  # exact before clamping and 8-bit rounding (see the API test)
        assert float(err.mean()) <= 0.5 / 255 and float(err.max()) <= 3 / 255  # measured max 1.8 / 255


@pytest.mark.parametrize("task", ["inpaint", "colorize"])
def test_cli_region_is_pasted_back_and_the_outside_is_unchanged(capsys, tmp_path, task):
    photo, x = save(tmp_path, smooth_photo(53, 37)[:, :1] if task == "colorize" else smooth_photo(53, 37), "p.png")
    extra = ["--mask-kind", "random", "--keep", "0.5"] if task == "inpaint" else []
    rc, _, err = run(capsys, task, photo, *extra, *TINY, "--region", "20,0,17,30", "-o", tmp_path / "out.png")
    assert rc == 0, err
    out = load_image(tmp_path / "out.png")
    far = outside(Region(20, 0, 17, 30), out.shape)
    assert out.shape == (1, 3, 53, 37)
    assert torch.equal(out.masked_select(far), x.expand_as(out).masked_select(far))
    assert not torch.equal(out, x.expand_as(out))  # the region was restored


def test_cli_detail_warning_is_one_line_and_crop_keeps_the_old_behaviour(capsys, tmp_path):
    photo, _ = save(tmp_path, smooth_photo(53, 37), "p.png")
    rc, _, err = run(capsys, "colorize", photo, *TINY[:-1], "-o", tmp_path / "full.png")
    warn = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert rc == 0 and len(warn) == 1 and "limits the detail" in warn[0] and "--region" in warn[0], err
    rc, _, err = run(capsys, "colorize", photo, *TINY, "--fit", "crop", "-o", tmp_path / "crop.png")
    assert rc == 0 and load_image(tmp_path / "crop.png").shape == (1, 3, R, R)
    rc, _, err = run(capsys, "colorize", photo, *TINY, "--fit", "crop", "--region", "0,0,8,8", "-o", tmp_path / "c.png")
    assert rc == 1 and "--region needs --fit full" in err


@pytest.mark.parametrize("module", ["restore.blend", "restore.fullres"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
