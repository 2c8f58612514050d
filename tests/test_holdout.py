"""Self-validation splits (restore.holdout): seeded, disjoint, covering, of observed entries only."""
import pytest
import torch
from torch import nn

import priors
import restore
from operators import CompressedSensing, Downsample, Grayscale, Mask, masks
from restore.holdout import Restricted, holdout, observed_entries
from restore.losses import mse
from test_operators import BATCH, CASES


def _problem(name, dtype=torch.float64, seed=0):
    case = CASES[name]
    op = case.make(seed).to(dtype)
    x = torch.rand((BATCH,) + case.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)
    return op, x, op(x)


@pytest.mark.parametrize("name", list(CASES))
def test_split_is_disjoint_covers_the_observed_entries_and_respects_the_fraction(name):
    op, _, y = _problem(name)
    split = holdout(y, op, fraction=0.3, seed=4)
    assert not bool((split.fit & split.held).any())
    assert torch.equal(split.fit | split.held, split.observed)
    counts = split.observed.flatten(1).sum(1)
    assert split.held.flatten(1).sum(1).tolist() == [round(0.3 * int(n)) for n in counts]
    torch.broadcast_shapes(split.fit.shape, y.shape)  # a mask over the observation's entries


@pytest.mark.parametrize("name", list(CASES))
def test_same_seed_same_split_different_seeds_differ(name):
    op, _, y = _problem(name)
    a, b, c = holdout(y, op, 0.3, seed=1), holdout(y.shape, op, 0.3, seed=1), holdout(y, op, 0.3, seed=2)
    assert torch.equal(a.held, b.held) and torch.equal(a.fit, b.fit)
    assert not torch.equal(a.held, c.held)


def test_held_out_pixels_of_a_mask_are_observed_pixels_never_holes():
    mask = masks.random_pixels((32, 32), keep=0.2, seed=0)
    op = Mask(mask)
    split = holdout(torch.zeros(1, 3, 32, 32), op, fraction=0.5, seed=0)
    assert split.held.shape == (1, 1, 32, 32)
    observed = op.mask.bool()
    assert bool(observed[split.held].all()) and not bool(split.held[~observed].any())
    assert int(split.held.sum()) == round(0.5 * int(observed.sum()))


def test_what_an_entry_is_for_each_kind_of_observation():
    assert observed_entries(Downsample(4), (3, 16, 16)).shape == (1, 1, 16, 16)  # low-res pixels
    assert observed_entries(Grayscale(), (1, 8, 8)).shape == (1, 1, 8, 8)
    assert observed_entries(CompressedSensing(30, (3, 4, 4), seed=0), (30,)).shape == (1, 30)  # measurements
    per_sample = Mask(masks.free_form((3, 1, 8, 8), seed=0))
    assert torch.equal(observed_entries(per_sample @ Grayscale(), (1, 8, 8)), per_sample.mask.bool())
    split = holdout((3, 3, 8, 8), per_sample, 0.25, seed=0)  # one split per sample, each its own
    assert split.held.shape == (3, 1, 8, 8) and not torch.equal(split.held[0], split.held[1])


def test_a_samples_split_does_not_depend_on_the_batch():
    one = holdout((1, 3, 16, 16), Downsample(2), 0.2, seed=5)
    four = holdout((4, 3, 16, 16), Downsample(2), 0.2, seed=5)
    assert torch.equal(one.held, four.held) and one.held.shape[0] == 1


@pytest.mark.parametrize("name", list(CASES))
def test_restricted_views_are_exact_linear_operators_with_the_right_mse_scale(name):
    op, x, y = _problem(name)
    split = holdout(y, op, fraction=0.3, seed=0)
    fit, held, full = Restricted(op, split.fit), Restricted(op, split.held), Restricted(op, split.observed)
    assert fit.adjoint_error(x) < 1e-10 and held.adjoint_error(x) < 1e-10
    assert bool((fit(x)[~split.fit.expand_as(y)] == 0).all())
    torch.testing.assert_close(full(x), op(x))  # every observed entry kept: the operator itself
    guess = torch.rand(x.shape, generator=torch.Generator().manual_seed(9), dtype=x.dtype)
    losses = {k: mse(v(guess), v.observe(y)) for k, v in (("fit", fit), ("held", held), ("full", full))}
    sets = {"fit": split.fit, "held": split.held, "full": split.observed}
    n = {k: s.flatten(1).sum(1).double() for k, s in sets.items()}
    # split losses are estimates of the full loss, weighted by their share of the observed entries
    torch.testing.assert_close(losses["fit"] * n["fit"] + losses["held"] * n["held"], losses["full"] * n["full"])
    torch.testing.assert_close(losses["full"], mse(op(guess), y))
    assert float(mse(fit(x), fit.observe(y)).max()) == 0.0


def test_held_out_mse_is_the_mean_over_held_out_entries_without_holes():
    op, x, y = _problem("downsample_bicubic")
    held = Restricted(op, holdout(y, op, 0.25, seed=0).held)
    guess = torch.zeros_like(x)
    sel = held.weight.bool().expand_as(y)
    expected = torch.stack([(op(guess) - y)[b][sel[b]].square().mean() for b in range(BATCH)])
    torch.testing.assert_close(mse(held(guess), held.observe(y)), expected)


def test_a_solver_fits_a_restricted_view_and_scores_the_held_out_entries():
    torch.manual_seed(0)
    G = priors.wrap(nn.Sequential(nn.Linear(8, 48), nn.Tanh(), nn.Unflatten(1, (3, 4, 4))), (8,))
    truth = G(G.sample_latents(2, seed=1))
    op = Mask(masks.random_pixels((2, 1, 4, 4), keep=0.75, seed=0))  # per-sample masks
    y = op(truth)
    split = holdout(y, op, 0.25, seed=0)
    fit, held = Restricted(op, split.fit), Restricted(op, split.held)
    res = restore.solve(fit.observe(y), fit, G, method="latent", steps=10, seed=0, progress=False,
                        preset="fast", n_init=8)
    torch.testing.assert_close(res.loss, mse(fit(res.prior_image), fit.observe(y)), rtol=1e-4, atol=1e-7)
    assert mse(held(res.image), held.observe(y)).shape == (2,)


@pytest.mark.parametrize("call, message", [
    (lambda: holdout((1, 3, 8, 8), None, 0.0), "fraction must be a number strictly between 0 and 1, got 0.0"),
    (lambda: holdout((1, 3, 8, 8), None, 1.5), "strictly between 0 and 1, got 1.5"),
    (lambda: holdout((1, 3, 8, 8), None, 0.2, seed=-1), "seed must be a non-negative int"),
    (lambda: holdout((1, 3, 2, 2), None, 0.05), r"of 4 observed entries .* leaves an empty fit or held-out set"),
    (lambda: holdout((5,), None, 0.2), r"observation shape must be \(B, ...\)"),
    (lambda: Restricted(Downsample(2), torch.zeros(1, 1, 4, 4)), r"keep selects no entry in row\(s\) \[0\]"),
    (lambda: Restricted(Mask(torch.ones(2, 1, 4, 4)), torch.ones(3, 1, 4, 4)),
     r"keep \(3, 1, 4, 4\) must be \(Bk, \*units\) with Bk = 1 or .* batch size 2"),
    (lambda: Restricted(Downsample(2), torch.ones(1, 1, 3, 3))(torch.rand(1, 3, 8, 8)), "does not broadcast"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
