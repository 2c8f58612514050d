"""solve(sigma=..., noise=...): the discrepancy floor, sigma="auto", Poisson whitening, errors."""
import pytest
import torch

import restore
from operators import CompressedSensing, Downsample, Weighted, poisson_whitening
from priors import dcgan
from restore.noise_model import estimate_sigma, noise_model

torch.set_num_threads(1)
KW = dict(method="latent", seed=0, progress=False, n_init=32, steps=300)


@pytest.fixture(scope="module")
def noisy():
    G = dcgan.tiny(seed=0)
    x = G(G.sample_latents(3, seed=5)).detach()
    A = CompressedSensing(200, (3, 16, 16), seed=0)
    y = A(x) + 0.05 * torch.randn(A(x).shape, generator=torch.Generator().manual_seed(0))
    return G, x, A, y


def test_known_sigma_damps_the_consistency_and_beats_projection(noisy):
    G, x, A, y = noisy
    blind = restore.solve(y, A, G, **KW)
    aware = restore.solve(y, A, G, sigma=0.05, **KW)
    assert torch.equal(aware.sigma, torch.full((3,), 0.05))
    # projection copies the noise into the image; the damped form does not
    assert (restore.metrics.psnr(aware.image, x) > restore.metrics.psnr(blind.image, x) + 2).all()


def test_sample_at_its_floor_stops_and_never_restarts(noisy):
    """With sigma above every reachable loss, each sample is at its floor from the first step:
    one step of the parallel starts, one of the chosen start, no polish, restart or LM start."""
    G, x, A, y = noisy
    res = restore.solve(y, A, G, sigma=1.0, **KW)
    assert res.history.shape[0] == 2


def test_auto_sigma_estimates_the_noise_from_the_residual_floor(noisy):
    G, x, A, y = noisy
    res = restore.solve(y, A, G, sigma="auto", **KW)
    assert res.sigma.shape == (3,) and ((res.sigma - 0.05).abs() < 0.01).all(), res.sigma
    assert res.options["sigma"] == "auto"


def test_poisson_is_whitened_to_unit_variance():
    G = dcgan.tiny(seed=0)
    x = G(G.sample_latents(2, seed=5)).detach()
    A, gain = Downsample(2), 50.0
    y = torch.poisson(gain * A(x), generator=torch.Generator().manual_seed(1)) / gain
    res = restore.solve(y, A, G, noise="poisson", gain=gain, **KW)
    assert ((res.loss - 1).abs() < 0.25).all(), res.loss  # whitened residual: about one per entry
    w = poisson_whitening(y, gain)
    torch.testing.assert_close(Weighted(A, w)(x), w * A(x))


def test_estimate_sigma_corrects_for_the_fitted_dof():
    assert float(estimate_sigma(torch.tensor([1.0]), entries=100, dof=50)) == pytest.approx(2 ** 0.5)


@pytest.mark.parametrize("kw, match", [
    (dict(sigma=-1.0), "sigma"), (dict(sigma="loud"), "sigma"), (dict(noise="laplace"), "noise"),
    (dict(noise="poisson"), "gain"), (dict(noise="poisson", gain=10.0, sigma=0.1), "not sigma"),
    (dict(gain=10.0), "poisson"), (dict(sigma=0.1, loss="l1"), "mse")])
def test_bad_noise_arguments_are_refused_before_any_work(noisy, kw, match):
    G, x, A, y = noisy
    with pytest.raises(ValueError, match=match):
        restore.solve(y.abs(), A, G, **{**KW, **kw}, callbacks=[lambda s: pytest.fail("work started")])


def test_noise_model_keeps_gaussian_observations():
    y = torch.rand(2, 5)
    m = noise_model(y, lambda t: t, sigma=0.1)
    assert m.y is y and torch.allclose(m.floor, torch.full((2,), 0.01, dtype=torch.float64))
