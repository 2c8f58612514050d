"""restore.classical: orthonormal transforms, TV prox, FISTA sparse reconstruction, lambda by hold-out."""
import math

import pytest
import torch

from operators import CompressedSensing, Mask, masks
from restore import classical as C
from restore.metrics import psnr

SHAPE = (3, 16, 16)


def _blocks(seed=0, batch=2):
    """Piecewise-constant images on dyadic 4x4 blocks: exactly sparse in Haar, small TV."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 4, 4, generator=gen, dtype=torch.float64)
    return coarse.repeat_interleave(4, -2).repeat_interleave(4, -1)


class PartialFourier:
    """A complex-valued operator (observed 2-D DFT coefficients), as a science benchmark would use."""

    def __init__(self, keep):
        self.keep = keep  # (H, W) bool

    def A(self, x):
        return torch.fft.fft2(x, norm="ortho")[..., self.keep]

    def A_adjoint(self, y):
        full = torch.zeros(*y.shape[:-1], *self.keep.shape, dtype=y.dtype)
        full[..., self.keep] = y
        return torch.fft.ifft2(full, norm="ortho")


@pytest.mark.parametrize("fwd,inv", [(C.haar2, C.ihaar2), (C.dct2, C.idct2)])
def test_transforms_are_orthonormal(fwd, inv):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 8, generator=gen, dtype=torch.float64)
    u = torch.randn(2, 3, 16, 8, generator=gen, dtype=torch.float64)
    assert torch.allclose(inv(fwd(x)), x, atol=1e-12)
    assert math.isclose(float(fwd(x).norm()), float(x.norm()), rel_tol=1e-12)
    assert math.isclose(float((fwd(x) * u).sum()), float((x * inv(u)).sum()), rel_tol=1e-10)


def test_haar_of_block_image_is_sparse():
    coeffs = C.haar2(_blocks())
    assert int((coeffs.abs() > 1e-12).sum()) <= 2 * 3 * 16  # only the 4x4 approximation level and above


def test_tv_prox_lowers_its_objective_and_keeps_constants():
    gen = torch.Generator().manual_seed(1)
    v = torch.rand(1, 3, 16, 16, generator=gen, dtype=torch.float64)
    t = torch.full((1, 1, 1, 1), 0.1, dtype=torch.float64)
    x, _ = C.tv_prox(v, t, iters=200)

    def objective(u):
        g = C._grad(u)
        return 0.5 * (u - v).square().sum() + 0.1 * g.square().sum(dim=(1, 2)).sqrt().sum()
    assert objective(x) < objective(v)
    for seed in range(3):  # a local minimum: random small moves do not help
        step = 1e-3 * torch.randn(v.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert objective(x) <= objective((x + step).clamp(0, 1)) + 1e-9
    flat = torch.full((1, 3, 8, 8), 0.4, dtype=torch.float64)
    assert torch.allclose(C.tv_prox(flat, t)[0], flat)


@pytest.mark.parametrize("regularizer", ["haar", "tv"])
def test_sparse_reconstruct_beats_pseudo_inverse_on_cs(regularizer):
    x = _blocks()
    op = CompressedSensing(300, SHAPE, seed=0).double()
    y = op(x)
    out = C.sparse_reconstruct(y, op, SHAPE, regularizer=regularizer, iters=150, fracs=(0.03, 0.01, 0.003),
                               iters_per_lam=40, tv_iters=10)
    assert out.shape == x.shape and out.dtype == x.dtype
    base = psnr(C.pseudo_inverse(y, op, SHAPE), x)
    assert bool((psnr(out, x) > base + 10).all()), (psnr(out, x), base)


def test_sparse_reconstruct_general_operators_mask_and_complex():
    x = _blocks(seed=2, batch=1)
    mask_op = Mask(torch.as_tensor(masks.random_pixels((16, 16), keep=0.4, seed=0), dtype=torch.float64))
    filled = C.sparse_reconstruct(mask_op(x), mask_op, SHAPE, regularizer="tv", iters=60, fracs=(0.01, 0.003),
                                  iters_per_lam=30, tv_iters=10)
    assert psnr(filled, x) > psnr(mask_op(x), x) + 8
    keep = torch.rand(16, 16, generator=torch.Generator().manual_seed(3)) < 0.4
    keep[0, 0] = True
    fourier = PartialFourier(keep)
    out = C.sparse_reconstruct(fourier.A(x), fourier, SHAPE, regularizer="haar", iters=100)
    zero_filled = fourier.A_adjoint(fourier.A(x)).real.clamp(0, 1)
    assert out.shape == x.shape and psnr(out, x) > psnr(zero_filled, x) + 20


def test_dct_recovers_a_few_cosines_from_cs():
    coeffs = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    coeffs[..., 0, 0], coeffs[:, 0, 1, 2], coeffs[:, 1, 3, 0], coeffs[:, 2, 2, 5] = 8.0, 1.0, -0.8, 0.6
    x = C.idct2(coeffs)
    op = CompressedSensing(200, SHAPE, seed=2).double()
    out = C.sparse_reconstruct(op(x), op, SHAPE, regularizer="dct", iters=150)
    assert psnr(out, x) > psnr(C.pseudo_inverse(op(x), op, SHAPE), x) + 15


def test_lambda_choice_is_seeded_and_grows_with_noise():
    x = _blocks(seed=4, batch=1)
    op = CompressedSensing(300, SHAPE, seed=1).double()
    y = op(x)
    noisy = y + 0.2 * torch.randn(y.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    lam_a, _ = C.choose_lambda(y, op, SHAPE, seed=7)
    lam_b, _ = C.choose_lambda(y, op, SHAPE, seed=7)
    assert torch.equal(lam_a, lam_b)
    lam_noisy, _ = C.choose_lambda(noisy, op, SHAPE, seed=7)
    assert float(lam_noisy) > float(lam_a)


def test_clear_errors():
    x = _blocks(batch=1)
    op = CompressedSensing(50, SHAPE, seed=0).double()
    with pytest.raises(ValueError, match="haar, dct, tv"):
        C.sparse_reconstruct(op(x), op, SHAPE, regularizer="wavelet")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        C.sparse_reconstruct(op(x), op, (16, 16))
    with pytest.raises(TypeError, match="A_adjoint"):
        C.sparse_reconstruct(op(x), lambda v: v, SHAPE)
    with pytest.raises(ValueError, match="holdout"):
        C.choose_lambda(op(x), op, SHAPE, holdout=1.5)


def test_docstring_examples():
    import doctest

    result = doctest.testmod(C)
    assert result.attempted > 0 and result.failed == 0
