"""PartialFourier, its k-space mask generators, and SinglePixel: agreement with numpy/scipy
references and the behaviour each documents (shared properties are in test_operators.py)."""
import math

import numpy as np
import pytest
import torch
from scipy.linalg import hadamard

from operators import GaussianNoise, PartialFourier, SinglePixel, masks
from operators.single_pixel import sequency_of_natural


# ---------------------------------------------------------------- PartialFourier
def test_measurements_are_the_numpy_spectrum_on_the_centred_mask():
    x = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    mask = masks.fourier_variable_density((6, 7), 0.4, seed=1)
    y = PartialFourier((3, 6, 7), mask)(x)
    spectrum = np.fft.fftshift(np.fft.fft2(x.numpy(), norm="ortho"), axes=(-2, -1))
    expected = spectrum[..., mask.numpy().astype(bool)]  # row-major scan of the centred mask
    np.testing.assert_allclose(torch.view_as_complex(y).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_full_mask_is_orthogonal_and_half_plane_has_norm_one():
    op = PartialFourier((1, 8, 8), torch.ones(8, 8)).double()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(op.A_adjoint(op(x)), x)
    torch.testing.assert_close(op.pinv(op(x)), x)
    assert op.norm(max_iter=50) == pytest.approx(1.0, rel=1e-6)


def test_a_frequency_without_its_mirror_has_norm_sqrt_half():
    mask = torch.zeros(8, 8)
    mask[4 + 1, 4 + 2] = 1  # k = (1, 2), not -k
    op = PartialFourier((1, 8, 8), mask).double()
    assert op.norm(max_iter=50) == pytest.approx(math.sqrt(0.5), rel=1e-6)


def test_noise_on_the_real_view_is_per_part_noise():
    op = PartialFourier((1, 16, 16), masks.fourier_random((16, 16), 0.5, seed=0)).double()
    y = op(torch.rand(1, 1, 16, 16, dtype=torch.float64))
    noisy = GaussianNoise(0.1, seed=0)(y)
    diff = torch.view_as_complex((noisy - y).contiguous())
    assert float(diff.real.std()) == pytest.approx(0.1, rel=0.2)
    assert float(diff.imag.std()) == pytest.approx(0.1, rel=0.2)


def test_fast_and_no_dense_matrix():
    op = PartialFourier((3, 64, 64), masks.fourier_lines((64, 64), 0.25, seed=0))
    assert sum(b.numel() for b in op.buffers()) <= 4 * 64 * 64
    assert op(torch.rand(2, 3, 64, 64)).shape == (2, 3, 16 * 64, 2)
    assert op.seed == 0 and op.spec()["mask"].dtype == np.uint8


@pytest.mark.parametrize("make, error, message", [
    (lambda: PartialFourier((1, 8, 8), torch.ones(8, 7)), ValueError,
     r"mask must be \(H, W\) = \(8, 8\) .*got \(8, 7\)"),
    (lambda: PartialFourier((1, 8, 8), torch.ones(2, 8, 8)), ValueError, r"mask must be \(H, W\).*got \(2, 8, 8\)"),
    (lambda: PartialFourier((1, 8, 8), torch.zeros(8, 8)), ValueError, "samples no frequency"),
    (lambda: PartialFourier((1, 8, 8), torch.full((8, 8), 0.5)), ValueError, "only 0 .* and 1"),
    (lambda: PartialFourier((8, 8), torch.ones(8, 8)), ValueError, r"shape must be \(C, H, W\).*got \(8, 8\)"),
    (lambda: PartialFourier((1, 8, 8), torch.ones(8, 8))(torch.rand(1, 2, 8, 8)), ValueError,
     r"PartialFourier: input image must have shape \(B, 1, 8, 8\), got \(1, 2, 8, 8\)"),
])
def test_partial_fourier_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---------------------------------------------------------------- k-space masks
def test_random_and_variable_density_draw_exact_counts_density_favours_the_centre():
    uniform = masks.fourier_random((3, 1, 32, 32), 0.2, seed=0)
    dense = masks.fourier_variable_density((3, 1, 32, 32), 0.2, decay=3.0, seed=0)
    for m in (uniform, dense):
        assert m.shape == (3, 1, 32, 32) and m.seed == 0 and torch.all(m.sum((1, 2, 3)) == round(0.2 * 1024))
    rr = torch.from_numpy(np.hypot(*np.meshgrid(np.arange(32) - 16, np.arange(32) - 16, indexing="ij")))
    mean_radius = [float((m[0, 0] * rr).sum() / m[0, 0].sum()) for m in (dense, uniform)]
    assert mean_radius[0] < 0.75 * mean_radius[1]
    assert not torch.equal(dense[0], dense[1])  # slices drawn independently


def test_lines_are_whole_rows_with_the_centre_always_in():
    m = masks.fourier_lines((2, 1, 20, 12), 0.3, center_fraction=0.1, seed=4)
    rows = m[:, 0].amax(-1)
    assert torch.all(m[:, 0].amin(-1) == rows)  # every sampled row is complete
    assert torch.all(rows.sum(-1) == 6) and torch.all(rows[:, 9:11] == 1)  # 6 lines, rows 9-10 are the centre
    assert not torch.equal(rows[0], rows[1])


def test_radial_spokes_cross_the_centre_and_are_seeded():
    a, b, c = (masks.fourier_radial((33, 33), 4, seed=s) for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.seed == 5
    assert a[16, 16] == 1 and 4 * 33 * 0.7 < float(a.sum()) < 4 * 2 * 33  # <= 2 pixels per unit length


@pytest.mark.parametrize("make, message", [
    (lambda: masks.fourier_random((8, 8), 1.5), r"fraction must be a fraction in \[0, 1\], got 1.5"),
    (lambda: masks.fourier_variable_density((8, 8), 0.2, decay=-1), "decay must be a finite number >= 0"),
    (lambda: masks.fourier_lines((8, 8), 0.2, center_fraction=0.5), r"center_fraction \(0.5\) must not exceed"),
    (lambda: masks.fourier_radial((8, 8), 0), "n_spokes must be an int >= 1, got 0"),
    (lambda: masks.fourier_radial((8,), 2), r"mask shape must end in \(H, W\)"),
])
def test_kspace_mask_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# ---------------------------------------------------------------- SinglePixel
@pytest.mark.parametrize("size", [1, 2, 8, 32])
def test_sequency_counts_the_sign_changes_of_each_hadamard_row(size):
    changes = (np.diff(hadamard(size), axis=1) != 0).sum(1)
    assert sequency_of_natural(size).tolist() == changes.tolist()


def test_patterns_are_hadamard_rows_coarse_first():
    op = SinglePixel(16, (1, 4, 8))
    pats = op.patterns().double()
    h2d = np.kron(hadamard(4), hadamard(8)) / math.sqrt(32)  # 2-D patterns, natural order
    np.testing.assert_allclose(pats.reshape(16, 32).numpy(), h2d[op.rows.numpy()], atol=1e-7)
    seq = [int(sequency_of_natural(4)[r // 8] + sequency_of_natural(8)[r % 8]) for r in op.rows.tolist()]
    assert seq == sorted(seq) and seq[0] == 0
    torch.testing.assert_close(pats.reshape(16, 32) @ pats.reshape(16, 32).T, torch.eye(16, dtype=torch.float64))


def test_padded_sizes_crop_the_patterns_and_random_ordering_is_seeded():
    op = SinglePixel(20, (3, 5, 6), "random", seed=2).double()
    assert (op.h_pad, op.w_pad) == (8, 8) and op.padded
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    expected = torch.einsum("kij,bcij->bck", op.patterns().double(), x)
    torch.testing.assert_close(op(x), expected)
    assert torch.equal(op.rows, SinglePixel(20, (3, 5, 6), "random", seed=2).rows)
    assert not torch.equal(op.rows, SinglePixel(20, (3, 5, 6), "random", seed=3).rows)
    assert sum(b.numel() for b in op.buffers()) == 20  # the pattern indices only


@pytest.mark.parametrize("make, error, message", [
    (lambda: SinglePixel(65, (1, 8, 8)), ValueError, r"1 <= m <= H\*W = 64 patterns, got m=65"),
    (lambda: SinglePixel(2.0, (1, 8, 8)), TypeError, "m must be an int, got float"),
    (lambda: SinglePixel(4, (1, 8, 8), "zigzag"), ValueError, r"ordering must be one of \('sequency', 'random'\)"),
    (lambda: SinglePixel(4, (1, 8, 8), seed=0), ValueError, "seed applies only to ordering='random'"),
    (lambda: SinglePixel(4, (8, 8)), ValueError, r"shape must be \(C, H, W\)"),
])
def test_single_pixel_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()
