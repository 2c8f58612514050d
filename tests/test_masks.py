"""Mask generators in operators.masks: shapes, 0/1 values, seeding, geometry, loading from images."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from operators import Mask, masks

SEEDED = {
    "random_pixels": lambda shape, seed: masks.random_pixels(shape, keep=0.3, seed=seed),
    "random_boxes": lambda shape, seed: masks.random_boxes(shape, n=3, size=5, seed=seed),
    "free_form": lambda shape, seed: masks.free_form(shape, seed=seed),
}


@pytest.mark.parametrize("name", SEEDED)
@pytest.mark.parametrize("shape", [(32, 24), (3, 32, 24), (2, 1, 32, 24)])
def test_shape_values_and_seeding(name, shape):
    make = SEEDED[name]
    m = make(shape, 5)
    assert m.shape == shape and m.dtype == torch.float32 and m.seed == 5
    assert bool(((m == 0) | (m == 1)).all()) and 0 < float(m.mean()) < 1
    assert torch.equal(make(shape, 5), m)
    assert not torch.equal(make(shape, 6), m)


@pytest.mark.parametrize("name", SEEDED)
def test_unseeded_draws_a_fresh_recorded_seed(name):
    make = SEEDED[name]
    a, b = make((16, 16), None), make((16, 16), None)
    assert isinstance(a.seed, int) and a.seed != b.seed
    assert torch.equal(make((16, 16), a.seed), a)
    assert Mask(a).seed == a.seed


@pytest.mark.parametrize("name", SEEDED)
def test_slices_are_independent(name):
    m = SEEDED[name]((4, 1, 32, 32), 0)
    assert len({m[i].numpy().tobytes() for i in range(4)}) == 4


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), h=st.integers(1, 20), w=st.integers(1, 20), keep=st.floats(0, 1), seed=st.integers(0, 2 ** 40))
def test_random_pixels_keeps_an_exact_count(b, h, w, keep, seed):
    m = masks.random_pixels((b, 1, h, w), keep=keep, seed=seed)
    assert m.flatten(1).sum(1).tolist() == [round(keep * h * w)] * b


def test_box_geometry():
    m = masks.box((10, 12), size=(4, 6))
    assert int((m == 0).sum()) == 24
    assert bool((m[3:7, 3:9] == 0).all()) and float(m[2].min()) == 1 and float(m[:, 2].min()) == 1
    corner = masks.box((2, 1, 10, 10), size=4, center=(0, 0))  # clipped at the border
    assert corner.shape == (2, 1, 10, 10) and int((corner[0, 0] == 0).sum()) == 4


def test_random_boxes_stay_inside_and_cover_at_most_n_boxes():
    m = masks.random_boxes((50, 3, 20, 30), n=2, size=(4, 5), seed=0)
    holes = (m == 0).flatten(2).sum(2)
    assert bool((holes >= 20).all()) and bool((holes <= 40).all())
    assert int(masks.random_boxes((8, 8), n=0, size=3, seed=0).sum()) == 64


def test_free_form_draws_brush_strokes():
    m = masks.free_form((64, 64), seed=0, max_strokes=1, max_vertices=2, max_width=6, max_length=20)
    hole = int((m == 0).sum())
    assert 0 < hole < 64 * 64 // 4


def test_from_image_file_and_arrays(tmp_path):
    arr = np.zeros((6, 8), dtype=np.uint8)
    arr[:, :4] = 255
    path = tmp_path / "mask.png"
    Image.fromarray(arr).save(path)
    m = masks.from_image(path)
    assert m.shape == (6, 8) and float(m[:, :4].min()) == 1 and float(m[:, 4:].max()) == 0
    assert torch.equal(masks.from_image(str(path), invert=True), 1 - m)
    assert torch.equal(masks.from_image(np.stack([arr] * 3, axis=-1)), m)  # RGB -> mean
    assert torch.equal(masks.from_image(torch.from_numpy(arr / 255.0), threshold=0.9), m)
    assert torch.equal(masks.from_image(np.full((2, 2), 0.4), threshold=0.3), torch.ones(2, 2))


@pytest.mark.parametrize("call, message", [
    (lambda: masks.random_pixels((8, 8), keep=1.5, seed=0), r"keep must be a fraction in \[0, 1\], got 1.5"),
    (lambda: masks.random_pixels((8,), keep=0.5, seed=0), r"mask shape must end in \(H, W\).*got \(8,\)"),
    (lambda: masks.random_pixels((8, 0), keep=0.5, seed=0), r"positive ints; got \(8, 0\)"),
    (lambda: masks.box((8, 8), size=9), r"box size \(9, 9\) does not fit in an image of \(H, W\) = \(8, 8\)"),
    (lambda: masks.box((8, 8), size=(2, 0)), r"box size must be a positive int or \(height, width\), got \(2, 0\)"),
    (lambda: masks.box((8, 8), size=2, center=(8, 0)), r"center \(row, col\) must lie in the image"),
    (lambda: masks.random_boxes((8, 8), n=-1, size=2, seed=0), "n must be an int >= 0, got -1"),
    (lambda: masks.free_form((8, 8), seed=0, max_vertices=1), "max_vertices must be an int >= 2, got 1"),
    (lambda: masks.from_image(np.zeros((2, 2)), threshold=2), r"threshold must be in \[0, 1\], got 2"),
    (lambda: masks.from_image(np.zeros((2, 2, 2, 2))), r"mask image must be \(H, W\).*got shape \(2, 2, 2, 2\)"),
])
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_seed_raises_type_error():
    with pytest.raises(TypeError, match="seed must be an int or None, got float"):
        masks.random_pixels((8, 8), keep=0.5, seed=1.5)
