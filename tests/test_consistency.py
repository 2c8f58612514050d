"""Data consistency (restore.consistency): exact for every operator of the operator tests' factory dict."""
import math

import pytest
import torch

from operators import CompressedSensing, Downsample, Grayscale, Mask, masks
from restore.consistency import (apply_consistency, damped, diagonal_gram, noise_lambda, project, smooth,
                                smooth_covariance, smooth_lambda)
from test_operators import BATCH, CASES, Case

EXACT = {torch.float32: 1e-5, torch.float64: 1e-10}
# compositions with a per-sample mask, on top of the shared factory dict
EXTRA = {
    "per_sample_mask_after_bicubic": Case(lambda s: Mask(masks.random_pixels((BATCH, 1, 4, 4), keep=0.6, seed=s))
                                          @ Downsample(2), (3, 8, 8), True),
    "per_sample_mask_after_gray": Case(lambda s: Mask(masks.random_pixels((BATCH, 1, 8, 8), keep=0.3, seed=s))
                                       @ Grayscale(), (3, 8, 8), True),
    "srht_power_of_two": Case(lambda s: CompressedSensing(10, (1, 4, 4), "srht", seed=s), (1, 4, 4), True),
}
ALL = {**CASES, **EXTRA}


def _problem(name, dtype=torch.float64, seed=0):
    """Operator, clean image, a different "prior" image and the noise-free observation."""
    case = ALL[name]
    op = case.make(seed).to(dtype)
    gen = torch.Generator().manual_seed(seed + 100)
    truth, prior = (torch.rand((BATCH,) + case.shape, generator=gen, dtype=torch.float64).to(dtype) for _ in range(2))
    return op, truth, prior, op(truth)


def _dense(op, x):
    """The operator as a matrix over the whole batch ``(B*m, B*n)`` (small test operators only)."""
    return torch.autograd.functional.jacobian(op.A, x).reshape(op(x).numel(), x.numel())


@pytest.mark.parametrize("correct", [project, smooth], ids=["project", "smooth"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(ALL))
def test_projection_makes_the_observation_exact(name, dtype, correct):
    op, _, prior, y = _problem(name, dtype)
    out = correct(prior, y, op)
    assert out.shape == prior.shape and out.dtype == dtype
    assert float((op(out) - y).abs().max()) <= EXACT[dtype]


@pytest.mark.parametrize("name", list(ALL))
def test_projection_is_the_minimum_norm_correction(name):
    op, _, prior, y = _problem(name)
    correction = (project(prior, y, op) - prior).flatten()
    J = _dense(op, prior)
    expected = torch.linalg.pinv(J) @ (y - op(prior)).flatten()
    torch.testing.assert_close(correction, expected, rtol=1e-8, atol=1e-8)
    _, s, vh = torch.linalg.svd(J)
    null = vh[(s > 1e-9 * s[0]).sum():]  # rows span the null space of A (none when A has full column rank)
    leak = float((null @ correction).abs().max()) if len(null) else 0.0
    assert leak <= 1e-9 * float(correction.norm())  # in the range of A*


@pytest.mark.parametrize("name", list(ALL))
def test_damped_matches_the_dense_formula(name):
    op, _, prior, y = _problem(name)
    noisy = y + 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    J = _dense(op, prior)
    r = (noisy - op(prior)).flatten()
    expected = J.T @ torch.linalg.solve(J @ J.T + 0.3 * torch.eye(len(r), dtype=r.dtype), r)
    torch.testing.assert_close((damped(prior, noisy, op, 0.3) - prior).flatten(), expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", list(ALL))
def test_damped_tends_to_projection_and_to_the_prior(name):
    op, _, prior, y = _problem(name)
    torch.testing.assert_close(damped(prior, y, op, 1e-9), project(prior, y, op), rtol=1e-6, atol=1e-6)
    far = damped(prior, y, op, 1e9)
    assert float((far - prior).abs().max()) < 1e-7
    torch.testing.assert_close(damped(prior, y, op, math.inf), prior, rtol=0, atol=0)


def test_per_sample_lambda():
    op, _, prior, y = _problem("downsample_bicubic")
    out = damped(prior, y, op, torch.tensor([0.0, math.inf], dtype=torch.float64))
    torch.testing.assert_close(out[:1], project(prior, y, op)[:1])
    torch.testing.assert_close(out[1:], prior[1:], rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n, case in ALL.items() if diagonal_gram(case.make(0)) is not None])
def test_diagonal_gram_is_exact_where_claimed(name):
    op, _, prior, y = _problem(name)
    d = diagonal_gram(op)
    J = _dense(op, prior)
    expected = torch.as_tensor(d, dtype=y.dtype).expand_as(y).flatten()
    torch.testing.assert_close(J @ J.T, torch.diag(expected), rtol=1e-12, atol=1e-12)


def test_closed_forms_cover_the_usual_tasks():
    assert diagonal_gram(Downsample(4, "bicubic")) is None  # bicubic: CG
    for op in (Mask(torch.ones(8, 8)), Downsample(4, "box"), Grayscale(), Mask(torch.ones(8, 8)) @ Grayscale(),
               CompressedSensing(10, (1, 4, 4), "srht", seed=0)):
        assert diagonal_gram(op) is not None


def test_projection_of_a_full_size_super_resolution_is_exact_and_quick():
    import time
    op = Downsample(4)
    gen = torch.Generator().manual_seed(0)
    truth, prior = torch.rand(2, 3, 64, 64, generator=gen), torch.rand(2, 3, 64, 64, generator=gen)
    start = time.perf_counter()
    out = project(prior, op(truth), op)
    assert time.perf_counter() - start < 2.0
    assert float((op(out) - op(truth)).abs().max()) <= 1e-5


def test_a_plain_linear_callable_gets_its_adjoint_from_autograd():
    op, _, prior, y = _problem("down_gray_srht")
    torch.testing.assert_close(project(prior, y, lambda img: op(img)), project(prior, y, op))
    torch.testing.assert_close(damped(prior, y, lambda img: op(img), 0.2), damped(prior, y, op, 0.2))


def _noisy_mask_problem(sigma=0.1, tau=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    op = Mask(masks.random_pixels((64, 64), keep=0.5, seed=seed)).double()
    truth = torch.rand(2, 3, 64, 64, generator=gen, dtype=torch.float64)
    prior = truth + tau * torch.randn(truth.shape, generator=gen, dtype=torch.float64)
    y = op(truth) + sigma * torch.randn(truth.shape, generator=gen, dtype=torch.float64)  # holes noisy too
    return op, truth, prior, y


def test_noise_lambda_recovers_the_noise_to_prior_variance_ratio():
    op, _, prior, y = _noisy_mask_problem(sigma=0.1, tau=0.05)
    assert noise_lambda(prior, y, op, 0.1).tolist() == pytest.approx([4.0, 4.0], rel=0.15)
    down = Downsample(2, "box").double()  # diagonal gram; and bicubic through Hutchinson's trace
    for A in (down, Downsample(2).double()):
        gen = torch.Generator().manual_seed(3)
        truth = torch.rand(2, 3, 64, 64, generator=gen, dtype=torch.float64)
        x = truth + 0.1 * torch.randn(truth.shape, generator=gen, dtype=torch.float64)
        yy = A(truth) + 0.05 * torch.randn(A(truth).shape, generator=gen, dtype=torch.float64)
        assert noise_lambda(x, yy, A, 0.05).tolist() == pytest.approx([0.25, 0.25], rel=0.3)


def test_noise_lambda_limits():
    op, _, prior, y = _noisy_mask_problem()
    assert noise_lambda(prior, y, op, 0.0).tolist() == [0.0, 0.0]
    assert noise_lambda(prior, y, op, 10.0).tolist() == [math.inf, math.inf]  # all residual is noise
    with pytest.raises(ValueError, match="sigma must be a finite number >= 0"):
        noise_lambda(prior, y, op, -0.1)


def test_damping_from_the_noise_level_beats_projection_on_noisy_observations():
    op, truth, prior, y = _noisy_mask_problem(sigma=0.1, tau=0.05)
    seen = op.mask.bool().expand_as(truth)  # holes keep the prior's image in every mode
    err = {mode: float((apply_consistency(prior, y, op, mode, sigma=0.1) - truth)[seen].square().mean())
           for mode in ("project", "damped", "none")}
    assert err["project"] == pytest.approx(0.1 ** 2, rel=0.05) and err["none"] == pytest.approx(0.05 ** 2, rel=0.05)
    assert err["damped"] == pytest.approx(0.1 ** 2 * 0.05 ** 2 / (0.1 ** 2 + 0.05 ** 2), rel=0.05)  # posterior


def test_apply_consistency_modes_and_clamping():
    op, _, prior, y = _problem("downsample_bicubic")
    assert apply_consistency(prior, y, op, "none") is prior
    torch.testing.assert_close(apply_consistency(prior, y, op), project(prior, y, op))
    torch.testing.assert_close(apply_consistency(prior, y, op, "damped", lam=0.5), damped(prior, y, op, 0.5))
    clamped = apply_consistency(4 * prior - 2, y, op, clamp=True)
    assert float(clamped.min()) >= 0 and float(clamped.max()) <= 1
    mask_op, _, mprior, my = _problem("mask")
    exact = apply_consistency(mprior, my, mask_op, clamp=True)  # a Mask stays exact after clipping
    assert float((mask_op(exact) - my).abs().max()) <= 1e-12


@pytest.mark.parametrize("call, error, message", [
    (lambda op, x, y: apply_consistency(x, y, op, "exact"), ValueError,
     r"mode must be one of \('project', 'damped', 'smooth', 'none'\)"),
    (lambda op, x, y: apply_consistency(x, y, op, "damped"), ValueError, "needs sigma .* or lam"),
    (lambda op, x, y: project(x, y[:, :, :2], op), ValueError, r"y has shape \(2, 3, 2, 4\) but the operator maps"),
    (lambda op, x, y: project(x[0], y, op), ValueError, r"x must be an image batch \(B, C, H, W\)"),
    (lambda op, x, y: project(x, y.long(), op), TypeError, "y must be a float tensor"),
    (lambda op, x, y: project(x, y * float("nan"), op), ValueError, "y must be finite"),
    (lambda op, x, y: damped(x, y, op, -1.0), ValueError, "lam must be >= 0"),
    (lambda op, x, y: damped(x, y, op, torch.ones(3)), ValueError, r"one value per sample \(2\)"),
    (lambda op, x, y: project(x, y, lambda img: op(img).clamp(0, 0.3)), ValueError, "needs a linear operator"),
])
def test_bad_inputs_raise_before_any_work(call, error, message):
    op, _, prior, y = _problem("downsample_bicubic")
    with pytest.raises(error, match=message):
        call(op, prior, y)


# ----------------------------------------------------------------------------- smooth (kriging) correction
@pytest.mark.parametrize("name", ["mask", "downsample_bicubic", "cs_gaussian"])
def test_smooth_correction_matches_the_dense_kriging_formula(name):
    op, _, prior, y = _problem(name)
    n = prior[0].numel()
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *prior.shape[1:])
    K = smooth_covariance(eye, 2.0).reshape(n, n)  # the covariance as a matrix (one sample)
    out = smooth(prior, y, op, length=2.0, nugget=0, tol=1e-12, max_iter=2000)
    for b in range(BATCH):
        J = _dense(op, prior[b:b + 1]) if not getattr(op, "batch_size", None) else None
        if J is None:
            pytest.skip("per-sample operator")
        r = (y[b:b + 1] - op(prior[b:b + 1])).flatten()
        expected = K @ J.T @ torch.linalg.pinv(J @ K @ J.T) @ r
        torch.testing.assert_close((out[b] - prior[b]).flatten(), expected, rtol=1e-6, atol=1e-8)


def test_smooth_covariance_is_a_symmetric_low_pass_filter():
    gen = torch.Generator().manual_seed(0)
    v, w = (torch.randn(2, 3, 12, 10, generator=gen, dtype=torch.float64) for _ in range(2))
    Kv, Kw = smooth_covariance(v, 3.0), smooth_covariance(w, 3.0)
    assert float((Kv * w).sum() - (v * Kw).sum()).__abs__() < 1e-10  # symmetric
    assert float((v * Kv).sum()) > 0 and float(Kv.norm()) < float(v.norm())  # positive, contracting
    ones = torch.ones(1, 1, 12, 10, dtype=torch.float64)
    torch.testing.assert_close(smooth_covariance(ones, 3.0), ones)  # a constant passes unchanged
    checker = (torch.arange(12)[:, None] + torch.arange(10)[None]) % 2 * 2.0 - 1
    assert float(smooth_covariance(checker[None, None].double(), 3.0).abs().max()) < 0.02  # the highest frequencies are cut


@pytest.mark.parametrize("colour", [0.0, 0.5, 0.9])
def test_smooth_covariance_colour_factor_and_its_root(colour):
    """``K = C ⊗ K_s``: symmetric, gray passes with the spatial filter alone, chroma is scaled by
    ``κ = (1 - ρ) / (1 + 2ρ)``, and ``root=True`` applied twice is ``K``."""
    gen = torch.Generator().manual_seed(1)
    v, w = (torch.randn(2, 3, 12, 10, generator=gen, dtype=torch.float64) for _ in range(2))
    K = lambda t: smooth_covariance(t, 3.0, colour=colour)  # noqa: E731
    assert abs(float((K(v) * w).sum() - (v * K(w)).sum())) < 1e-10
    gray = v.mean(1, keepdim=True).expand_as(v)
    spatial = smooth_covariance(v, 3.0, colour=0.0)
    torch.testing.assert_close(K(gray), smooth_covariance(gray, 3.0, colour=0.0))
    chroma = v - gray
    kappa = (1 - colour) / (1 + 2 * colour)
    torch.testing.assert_close(K(chroma), kappa * smooth_covariance(chroma, 3.0, colour=0.0))
    half = lambda t: smooth_covariance(t, 3.0, colour=colour, root=True)  # noqa: E731
    torch.testing.assert_close(half(half(v)), K(v))
    one_channel = v[:, :1]  # not an RGB image: channel by channel
    torch.testing.assert_close(smooth_covariance(one_channel, 3.0, colour=colour), spatial[:, :1])
    with pytest.raises(ValueError, match="colour"):
        smooth_covariance(v, 3.0, colour=1.0)


def test_smooth_colorization_corrects_the_luma_and_keeps_the_prior_chroma():
    """A gray observation of an RGB image: the correlated colour error puts the correction on
    gray, so the prior's chroma (RGB minus its mean) barely moves, where the minimum-norm
    projection adds the luma weights' green-magenta cast; Gray(out) = y either way."""
    gen = torch.Generator().manual_seed(2)
    truth = torch.rand(2, 3, 16, 16, generator=gen, dtype=torch.float64)
    prior = (truth + 0.3 * smooth_covariance(torch.randn(2, 1, 16, 16, generator=gen, dtype=torch.float64), 3.0)
             ).expand(-1, 3, -1, -1).clone()  # a brightness error shared by R, G, B
    prior = prior + 0.1 * (truth - truth.mean(1, keepdim=True))
    op = Grayscale().to(torch.float64)
    y = op(truth)
    chroma = lambda t: t - t.mean(1, keepdim=True)  # noqa: E731
    moved = {}
    for name, out in (("smooth", smooth(prior, y, op)), ("project", project(prior, y, op))):
        assert float((op(out) - y).abs().max()) < 1e-6
        moved[name] = float((chroma(out) - chroma(prior)).norm() / (out - prior).norm())
    assert moved["smooth"] < 0.05 < 0.3 < moved["project"]


def test_smooth_correction_recovers_a_smooth_prior_error_better_than_projection():
    """A prior image off by a smooth field: kriging the residual through 20% observed pixels
    recovers the field; the projection leaves it in all the unobserved pixels."""
    gen = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 3, 32, 32, generator=gen, dtype=torch.float64)
    field = smooth_covariance(torch.randn(2, 3, 32, 32, generator=gen, dtype=torch.float64), 6.0)
    prior = truth + 0.3 * field / field.std()
    op = Mask(masks.random_pixels((1, 1, 32, 32), keep=0.2, seed=0)).to(torch.float64)
    y = op(truth)
    err = {name: float((fn(prior, y, op) - truth).square().mean())
           for name, fn in (("project", project), ("smooth", smooth))}
    assert err["smooth"] < 0.1 * err["project"]


def test_smooth_ignores_what_a_mask_does_not_observe_and_its_nugget_keeps_noise_down():
    """Noise in a Mask's holes (y's unobserved entries) changes nothing; on noisy observed pixels
    the nugget's smoothing beats the exact interpolation of the noise (lower error in the holes)."""
    gen = torch.Generator().manual_seed(4)
    truth = smooth_covariance(torch.rand(2, 3, 32, 32, generator=gen, dtype=torch.float64), 3.0)
    prior = truth + 0.2 * smooth_covariance(torch.randn(2, 3, 32, 32, generator=gen, dtype=torch.float64), 4.0)
    op = Mask(masks.random_pixels((1, 1, 32, 32), keep=0.2, seed=0)).to(torch.float64)
    noise = 0.05 * torch.randn(truth.shape, generator=gen, dtype=torch.float64)
    clean = smooth(prior, op(truth), op)
    torch.testing.assert_close(smooth(prior, op(truth) + (1 - op.mask) * noise, op), clean)
    y = op(truth) + op.mask * noise
    holes = (1 - op.mask).expand_as(truth)
    err = {n: float(((smooth(prior, y, op, nugget=n) - truth) * holes).square().sum()) for n in (0.0, 0.03)}
    assert err[0.03] < err[0.0]


def test_smooth_lambda_damps_noise_and_vanishes_without_it():
    op, truth, prior, _ = _problem("mask")
    gen = torch.Generator().manual_seed(3)
    y = op(truth + 0.2 * torch.randn(truth.shape, generator=gen, dtype=torch.float64))
    lam = smooth_lambda(prior, y, op, 0.2)
    assert lam.shape == (BATCH,) and bool((lam > 0).all())
    assert bool((smooth_lambda(prior, y, op, 0.0) == 0).all())
    damped_out = apply_consistency(prior, y, op, "smooth", sigma=0.2)
    assert float((op(damped_out) - y).abs().max()) > 1e-3  # the noisy entries are not copied
