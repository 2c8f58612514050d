"""restore.sample: shapes, seeds, summary statistics and argument checks on a tiny generator."""
import importlib

import pytest
import torch
from torch import nn

import priors
import restore
from operators import CompressedSensing, Mask

sample_module = importlib.import_module("restore.sample")  # restore.sample is the function
SIGMA = 0.02
FAST = {"steps": 12, "solve_steps": 40, "preset": "fast", "n_init": 16}


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 24), nn.Tanh(), nn.Linear(24, 36), nn.Unflatten(1, (1, 6, 6)))
    G = priors.wrap(net, (4,))
    x = G(G.sample_latents(2, seed=3))
    op = CompressedSensing(20, (1, 6, 6), seed=0)
    y = op(x) + SIGMA * torch.randn(2, 20, generator=torch.Generator().manual_seed(4))
    return G, op, x, y


@pytest.mark.parametrize("strategy", ["langevin", "ensemble"])
def test_shapes_and_summary(problem, strategy):
    G, op, x, y = problem
    s = restore.sample(y, op, G, n=4, sigma=SIGMA, strategy=strategy, seed=0, **FAST)
    assert s.samples.shape == (4, 2, 1, 6, 6)
    assert s.mean.shape == s.std.shape == (2, 1, 6, 6)
    assert s.fit.shape == (4, 2)
    assert torch.allclose(s.mean, s.samples.mean(0))
    assert torch.allclose(s.std, s.samples.std(0))
    assert (s.std >= 0).all() and s.std.sum() > 0  # the samples differ
    assert s.samples.min() >= 0 and s.samples.max() <= 1
    assert s.options["strategy"] == strategy and s.options["n"] == 4 and s.options["seed"] == 0
    assert (s.acceptance is None) == (strategy == "ensemble")


def test_langevin_fits_the_data_and_seeds_reproduce(problem):
    G, op, x, y = problem
    a = restore.sample(y, op, G, n=3, sigma=SIGMA, seed=5, **FAST)
    b = restore.sample(y, op, G, n=3, sigma=SIGMA, seed=5, **FAST)
    c = restore.sample(y, op, G, n=3, sigma=SIGMA, seed=6, **FAST)
    assert torch.equal(a.samples, b.samples)
    assert not torch.equal(a.samples, c.samples)
    resid = (op(a.samples.flatten(0, 1)) - y.repeat(3, 1)).square().mean(1).view(3, 2)
    assert torch.allclose(a.fit, resid, rtol=1e-4, atol=1e-9)
    assert (a.fit < 10 * SIGMA ** 2).all()  # samples consistent with the noise, not random images
    assert ((a.acceptance > 0) & (a.acceptance <= 1)).all()
    assert a.consistent().all() and a.options["m"] == 20
    assert not a.consistent(k=-1e9).any()  # the bound is on the mean fit


def test_start_from_your_own_solve(problem):
    G, op, x, y = problem
    res = restore.solve(y, op, G, method="latent", seed=0, progress=False, sigma=SIGMA, steps=40, preset="fast",
                        n_init=16)
    a = restore.sample(y, op, G, n=2, sigma=SIGMA, seed=0, start=res, steps=6)
    assert a.solve is res and a.samples.shape == (2, 2, 1, 6, 6)
    with pytest.raises(ValueError, match="start"):
        restore.sample(y[:1], op, G, n=2, sigma=SIGMA, start=res)
    with pytest.raises(ValueError, match="start"):
        restore.sample(y, op, G, n=2, sigma=SIGMA, start=res, strategy="ensemble")


def test_n_equals_one(problem):
    G, op, x, y = problem
    s = restore.sample(y, op, G, n=1, sigma=SIGMA, seed=0, **FAST)
    assert s.samples.shape == (1, 2, 1, 6, 6)
    assert torch.equal(s.std, torch.zeros_like(s.mean)) and torch.equal(s.mean, s.samples[0])


def test_ensemble_serves_per_sample_operators(problem):
    G, _, x, _ = problem
    masks = (torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(1)) > 0.4).float()
    op = Mask(masks)
    y = op(x)
    s = restore.sample(y, op, G, n=3, sigma=SIGMA, strategy="ensemble", seed=0, **FAST)
    assert s.samples.shape == (3, 2, 1, 6, 6) and s.fit.shape == (3, 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "n "), ({"n": 2.0}, "n "), ({"sigma": 0.0}, "sigma"), ({"sigma": float("nan")}, "sigma"),
    ({"strategy": "mcmc"}, "strategy"), ({"method": "mgan"}, "method"), ({"steps": -1}, "steps"),
    ({"max_dim": 2}, "max_dim"),
])
def test_bad_arguments_raise_before_work(problem, kwargs, match, monkeypatch):
    G, op, x, y = problem
    called = []
    monkeypatch.setattr(sample_module, "solve", lambda *a, **k: called.append(1))
    args = {"n": 2, "sigma": SIGMA, **kwargs}
    with pytest.raises(ValueError, match=match):
        restore.sample(y, op, G, **args)
    assert not called


def test_sigma_is_required(problem):
    G, op, x, y = problem
    with pytest.raises(TypeError):
        restore.sample(y, op, G, n=2)
