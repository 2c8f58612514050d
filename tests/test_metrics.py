"""Batched metrics: PSNR, SSIM (scikit-image), LPIPS."""
import pytest
import torch
from skimage.metrics import structural_similarity

from restore import metrics

torch.set_num_threads(1)


def images(n=3, c=3, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, s, s, generator=g)


def test_psnr_known_values():
    x = torch.full((2, 3, 8, 8), 0.5)
    assert torch.allclose(metrics.psnr(x, x + 0.1), torch.full((2,), 20.0), atol=1e-4)
    assert torch.isinf(metrics.psnr(x, x)).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage_per_sample(channels):
    x, y = images(c=channels), images(c=channels, seed=1)
    got = metrics.ssim(x, y)
    want = [structural_similarity(a.numpy(), b.numpy(), data_range=1.0, channel_axis=0) for a, b in zip(x, y)]
    assert got.shape == (3,) and torch.allclose(got, torch.tensor(want), atol=1e-6)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(3))


def test_lpips_batched():
    x, y = images(s=32), images(s=32, seed=1)
    d = metrics.lpips(x, y)
    assert d.shape == (3,) and torch.all(d > 0)
    assert torch.allclose(metrics.lpips(x, x), torch.zeros(3), atol=1e-6)


@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim, metrics.lpips])
def test_shape_mismatch_raises(fn):
    with pytest.raises(ValueError, match="one shape"):
        fn(images(), images(s=8))


def test_mean_reduction_is_one_float():
    x = torch.full((2, 3, 8, 8), 0.5)
    y = torch.stack([x[0] + 0.1, x[1] + 0.2])
    per_sample = metrics.psnr(x, y)
    mean = metrics.psnr(x, y, reduction="mean")
    assert isinstance(mean, float) and mean == pytest.approx(float(per_sample.double().mean()))
    assert isinstance(metrics.ssim(x, y, reduction="mean"), float)
    with pytest.raises(ValueError, match="reduction must be one of"):
        metrics.psnr(x, y, reduction="sum")
