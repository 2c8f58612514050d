"""Anchoring the prior's image to the classical answer (restore.anchor): the held-out choice of beta."""
import pytest
import torch

from operators import CompressedSensing, Downsample, Grayscale, Mask, masks
from restore.anchor import anchor, blend, held_out_beta
from restore.consistency import project
from restore.holdout import Restricted, holdout
from restore.tasks import classical_from_entries
from test_operators import BATCH, CASES

LINEAR = [n for n in CASES if n not in ("from_callable",)]


def _problem(name, seed=0):
    case = CASES[name]
    op = case.make(seed).double()
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.rand((BATCH,) + case.shape, generator=gen, dtype=torch.float64)
    wrong = torch.rand(x.shape, generator=gen, dtype=torch.float64)
    return op, x, op(x), wrong


def _held_residual(candidate, y, op, split):
    fit, held = Restricted(op, split.fit).double(), Restricted(op, split.held).double()
    on_fit = project(candidate, fit.observe(y), fit)
    return (held(on_fit) - held.observe(y)).square().flatten(1).sum(1)


@pytest.mark.parametrize("name", LINEAR)
def test_beta_is_one_for_a_true_prior_and_zero_for_a_true_classical_answer(name):
    op, x, y, wrong = _problem(name)
    split = holdout(y, op, 0.3, seed=0)
    image, beta_prior = anchor(x, y, op, wrong, split, classical_fit=wrong)
    beta_classical = held_out_beta(wrong, x, y, op, split)
    assert torch.allclose(image, x.clamp(0, 1), atol=1e-6)
    assert torch.allclose(beta_classical, torch.zeros(BATCH, dtype=x.dtype), atol=1e-6)
    determined = torch.allclose(project(wrong, y, op), x, atol=1e-6)  # A x = y fixes x: beta is moot
    assert determined or torch.allclose(beta_prior, torch.ones(BATCH, dtype=x.dtype), atol=1e-6)


@pytest.mark.parametrize("name", ["mask", "downsample_bicubic", "grayscale", "cs_gaussian", "gray_then_mask"])
def test_beta_minimizes_the_held_out_residual_over_a_grid(name):
    op, x, y, wrong = _problem(name)
    gen = torch.Generator().manual_seed(7)
    prior = x + 0.3 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    classical = x + 0.3 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    split = holdout(y, op, 0.3, seed=2)
    beta = held_out_beta(prior, classical, y, op, split, margin=0.0)
    grid = torch.linspace(0, 1, 201, dtype=x.dtype)
    residuals = torch.stack([_held_residual(classical + b * (prior - classical), y, op, split) for b in grid])
    best = _held_residual(classical + beta.view(-1, 1, 1, 1) * (prior - classical), y, op, split)
    assert bool((best <= residuals.min(0).values * (1 + 1e-9) + 1e-12).all())
    assert bool(((beta > 0) & (beta < 1)).all())  # two equally noisy answers: an interior mix
    safe = held_out_beta(prior, classical, y, op, split)  # one standard error below
    assert bool((safe < beta).all()) and bool((safe >= 0).all())


def test_margin_is_one_standard_error_of_the_least_squares_beta():
    op, x, y, wrong = _problem("cs_gaussian")
    gen = torch.Generator().manual_seed(5)
    prior = x + 0.1 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    classical = x + 0.3 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    split = holdout(y, op, 0.4, seed=0)
    fit, held = Restricted(op, split.fit).double(), Restricted(op, split.held).double()
    base = project(classical, fit.observe(y), fit)
    g = held(project(prior, fit.observe(y), fit) - base)
    r0 = held.observe(y) - held(base)
    b = (r0 * g).sum(1) / (g * g).sum(1)
    se = ((r0 - b[:, None] * g).square().sum(1) / ((int(split.held.sum()) - 1) * (g * g).sum(1))).sqrt()
    got = held_out_beta(prior, classical, y, op, split, margin=2.0)
    assert torch.allclose(got, (b - 2 * se).clamp(0, 1), atol=1e-9)


@pytest.mark.parametrize("name", ["mask", "downsample_bicubic", "cs_gaussian"])
def test_blend_is_the_projected_mix_and_consistent_with_y(name):
    op, x, y, wrong = _problem(name)
    prior, classical = 0.5 * x + 0.25, 0.5 * wrong + 0.25
    assert torch.allclose(blend(prior, classical, 0.0, y, op), project(classical, y, op).clamp(0, 1))
    assert torch.allclose(blend(prior, classical, 1.0, y, op), project(prior, y, op).clamp(0, 1))
    beta = torch.tensor([0.2, 0.7], dtype=x.dtype)[:BATCH]
    out = blend(prior, classical, beta, y, op)
    mix = classical + beta.view(-1, 1, 1, 1) * (prior - classical)
    assert torch.allclose(out, project(mix, y, op).clamp(0, 1))


def test_anchor_returns_the_held_out_beta_and_takes_a_fixed_one():
    op, x, y, wrong = _problem("mask")
    split = holdout(y, op, 0.3, seed=0)
    image, beta = anchor(x, y, op, wrong, split, classical_fit=wrong)
    assert torch.allclose(beta, torch.ones(BATCH, dtype=x.dtype)) and torch.allclose(image, x)
    image, beta = anchor(x, y, op, wrong, beta=0.5)
    assert beta.tolist() == [0.5] * BATCH
    assert torch.allclose(image, blend(x, wrong, 0.5, y, op))


def test_noise_keeps_beta_near_the_noise_free_choice():
    op = CompressedSensing(600, (3, 16, 16), seed=0).double()
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64)
    prior = x + 0.05 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    classical = x + 0.2 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    y = op(x) + 0.02 * torch.randn(2, 600, generator=gen, dtype=x.dtype)
    split = holdout(y, op, 0.2, seed=0)
    beta = held_out_beta(prior, classical, y, op, split, sigma=0.02)
    assert bool((beta > 0.8).all())  # the better prior still wins under noise


def test_anchor_refuses_bad_inputs_before_any_work():
    op, x, y, wrong = _problem("mask")
    split = holdout(y, op, 0.3, seed=0)
    with pytest.raises(ValueError, match="split and classical_fit"):
        anchor(x, y, op, wrong)
    with pytest.raises(ValueError, match="beta must be in"):
        anchor(x, y, op, wrong, beta=1.5)
    with pytest.raises(ValueError, match="classical_image has shape"):
        anchor(x, y, op, wrong[:, :1], beta=0.5)
    with pytest.raises(TypeError, match="Split"):
        held_out_beta(x, wrong, y, op, split.fit)
    with pytest.raises(ValueError, match="margin"):
        held_out_beta(x, wrong, y, op, split, margin=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        held_out_beta(x, wrong, y, op, split, sigma=-1.0)


@pytest.mark.parametrize("op, shape", [
    (Mask(torch.as_tensor(masks.random_pixels((8, 8), keep=0.6, seed=0), dtype=torch.float32).reshape(1, 1, 8, 8)), (3, 8, 8)),
    (Downsample(2), (3, 8, 8)), (Grayscale(), (3, 8, 8)), (CompressedSensing(30, (3, 4, 4), seed=0), (3, 4, 4))])
def test_classical_from_entries_uses_only_the_kept_entries(op, shape):
    x = torch.rand((2,) + shape, generator=torch.Generator().manual_seed(0))
    y = op(x)
    split = holdout(y, op, 0.3, seed=1)
    out = classical_from_entries(op, y, shape, split.fit)
    assert out.shape == (2,) + shape and float(out.min()) >= 0 and float(out.max()) <= 1
    changed = torch.where(split.held.expand_as(y), torch.rand_like(y), y)
    assert torch.allclose(classical_from_entries(op, changed, shape, split.fit), out, atol=1e-5)
    assert not torch.allclose(classical_from_entries(op, changed, shape, split.held), 
                              classical_from_entries(op, y, shape, split.held), atol=1e-3)


def test_module_example_runs():
    import doctest

    import restore.anchor as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
