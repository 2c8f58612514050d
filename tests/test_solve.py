"""restore.solve on tiny random generators: every method x every operator family, in <= 30 steps."""
import pytest
import torch

import restore
from operators import CompressedSensing, Downsample, Grayscale, Mask, masks
from priors import cdcgan, dcgan, stylegan2
from priors.dgp import load_finetuned
from restore import Stage
from restore.optim import MaskedAdam, ramp_lr

torch.set_num_threads(1)

FAST = {
    "latent": dict(n_init=16, n_starts=2, restarts=0, refine_steps=2, lm_starts=1, lm_steps=2),
    "mgan": dict(n_init=16, n_codes=3, n_starts=2, restarts=0, lm_starts=0, refine_steps=2),
    "dgp": dict(n_init=16, stages=(Stage(10, 0.1, 0.0, 0), Stage(10, 0.05, 1e-3, 2)), average=1),
}
STEPS = {"latent": 20, "mgan": 20, "dgp": None}
OPERATORS = {
    "mask": lambda b: Mask(masks.random_pixels((16, 16), keep=0.3, seed=0)),
    "mask_per_sample": lambda b: Mask(masks.random_pixels((b, 1, 16, 16), keep=0.3, seed=1)),
    "sr": lambda b: Downsample(2),
    "gray": lambda b: Grayscale(),
    "cs": lambda b: CompressedSensing(100, (3, 16, 16), seed=0),
}


@pytest.fixture(scope="module")
def G():
    return dcgan.tiny(seed=0)


def targets(G, n=3, seed=5):
    return G(G.sample_latents(n, seed=seed)).detach()


def run(y, A, G, method, seed=0, **kw):
    opts = {**FAST[method], **kw}
    return restore.solve(y, A, G, method=method, steps=STEPS[method], seed=seed, progress=False, **opts)


@pytest.mark.parametrize("op", sorted(OPERATORS))
@pytest.mark.parametrize("method", sorted(FAST))
def test_loss_drops_and_range(G, method, op):
    x = targets(G)
    A = OPERATORS[op](len(x))
    res = run(A(x), A, G, method)
    assert res.image.shape == x.shape
    assert res.image.min() >= 0 and res.image.max() <= 1
    assert torch.all(res.loss < res.history[0]), (res.loss, res.history[0])
    assert res.history.shape[1] == len(x) and res.best_step.shape == (len(x),)
    assert torch.all(res.nonfinite_steps == 0) and not res.stopped_early


@pytest.mark.parametrize("method", sorted(FAST))
def test_seeds_reproduce_and_differ(G, method):
    x = targets(G, 2)
    A = OPERATORS["sr"](2)
    a, b, c = run(A(x), A, G, method, seed=3), run(A(x), A, G, method, seed=3), run(A(x), A, G, method, seed=4)
    assert torch.equal(a.image, b.image) and torch.equal(a.history.nan_to_num(), b.history.nan_to_num())
    assert not torch.equal(a.image, c.image)


@pytest.mark.parametrize("method", sorted(FAST))
def test_rerun_from_options(G, method):
    x = targets(G, 2)
    A = OPERATORS["cs"](2)
    a = run(A(x), A, G, method, seed=None)
    assert isinstance(a.options["seed"], int)
    b = restore.solve(A(x), A, G, progress=False, **a.options)
    assert torch.equal(a.image, b.image)


@pytest.mark.parametrize("method", sorted(FAST))
def test_callbacks_stop(G, method):
    x = targets(G, 2)
    A = OPERATORS["mask"](2)
    seen = []

    def cb(state):
        assert state.loss.shape == (2,) and state.image.shape == x.shape
        seen.append(state.step)
        return state.step == 4

    res = run(A(x), A, G, method, callbacks=[cb])
    assert seen == list(range(5)) and res.stopped_early and len(res.history) == 5


@pytest.mark.parametrize("method", sorted(FAST))
def test_nonfinite_loss_is_skipped_for_that_sample(G, method):
    x = targets(G, 2)
    A = OPERATORS["sr"](2)
    calls = {"n": 0}

    def loss(pred, y):
        calls["n"] += 1
        out = (pred - y).square().flatten(1).mean(1)
        if 3 <= calls["n"] <= 6:  # sample 0 (row 0 of every batch) breaks for a few steps
            out = out.clone()
            out[0] = float("nan")
        return out

    res = run(A(x), A, G, method, loss=loss)
    assert torch.isfinite(res.image).all()
    assert res.nonfinite_steps[0] > 0 and res.nonfinite_steps[-1] == 0
    assert torch.isfinite(res.loss).all() and torch.all(res.loss < res.history[0].nan_to_num(float("inf")))


@pytest.mark.parametrize("stall", [None, 3])
@pytest.mark.parametrize("op", ["mask_per_sample", "cs"])
@pytest.mark.parametrize("method", sorted(FAST))
def test_batch_independence(G, method, op, stall):
    """Also when samples stop at different steps (a 3-step stall window): a stopped sample
    spends no budget, so its batch mates do not change its later phases."""
    x = targets(G, 3)
    A3, y = OPERATORS[op](3), None
    y = A3(x)
    kw = {} if stall is None else dict(stall_window=stall, stall_rtol=0.05)
    together = run(y, A3, G, method, **kw)
    if op == "mask_per_sample":
        A1 = Mask(A3.mask[1:2])
    else:
        A1 = A3
    alone = run(y[1:2], A1, G, method, **kw)
    assert torch.allclose(together.image[1:2], alone.image, atol=2e-4)
    assert torch.allclose(together.loss[1:2], alone.loss, rtol=1e-3, atol=1e-7)


def test_option_validation(G):
    x = targets(G, 1)
    A = Downsample(2)
    with pytest.raises(TypeError, match="valid options.*n_codes"):
        restore.solve(A(x), A, G, method="mgan", restarts=0, refine_steps=1, colour=3, progress=False)
    with pytest.raises(ValueError, match="method"):
        restore.solve(A(x), A, G, method="nope", progress=False)
    with pytest.raises(ValueError, match="preset"):
        restore.solve(A(x), A, G, method="latent", preset="turbo", progress=False)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        restore.solve(A(x), A, G, method="mgan", restarts=0, refine_steps=1, steps=0, progress=False)
    with pytest.raises(ValueError, match="n_starts"):
        restore.solve(A(x), A, G, method="latent", n_starts=0, progress=False)


def test_shape_and_device_mismatch_named(G):
    x = targets(G, 2)
    A = Downsample(4)
    with pytest.raises(ValueError, match=r"y \(2, 3, 8, 8\).*prior images"):
        restore.solve(Downsample(2)(x), A, G, method="latent", progress=False)
    with pytest.raises(ValueError, match="operator expects images"):
        restore.solve(torch.zeros(2, 100), CompressedSensing(100, (3, 32, 32), seed=0), G, progress=False)
    with pytest.raises(ValueError, match="devices differ"):
        restore.solve(A(x).to("meta"), A, G, method="latent", progress=False)


def test_dgp_finetuned_state_reproduces_image(G):
    x = targets(G, 2)
    A = Mask(masks.box((16, 16), 6))
    before = {k: v.clone() for k, v in G.state_dict().items()}
    res = run(A(x), A, G, "dgp")
    assert res.finetuned["blocks"] == [0, 1]
    for b in range(2):
        Gb = load_finetuned(G, res.finetuned["params"], b)
        assert torch.allclose(Gb(res.latents["z"][b:b + 1]), res.prior_image[b:b + 1], atol=1e-5)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())


def test_conditional_prior_each_method():
    Gc = cdcgan.tiny(seed=0)
    c = torch.tensor([0, 3])
    x = Gc(Gc.sample_latents(2, seed=2), c).detach()
    A = Downsample(2)
    for method in FAST:
        res = run(A(x), A, Gc, method, c=c)
        assert torch.all(res.loss < res.history[0])


@pytest.mark.parametrize("space", ["z", "w+"])
def test_stylegan_like_prior_tail_latent_and_spaces(space):
    Gs = stylegan2.tiny(seed=0)
    x = Gs(Gs.sample_latents(2, seed=2)).detach()
    A = Downsample(2)
    res = restore.solve(A(x), A, Gs, method="mgan", restarts=0, refine_steps=1, steps=10, seed=0, progress=False, n_init=8, n_codes=2,
                        space=space)
    assert "tail" in res.latents and torch.all(res.loss < res.history[0])
    res = restore.solve(A(x), A, Gs, method="latent", steps=10, seed=0, progress=False, n_init=8, n_starts=1,
                        restarts=0, lm_starts=0, refine_steps=1, space=space)
    assert torch.all(res.loss < res.history[0])


def test_weighted_and_perceptual_loss(G):
    x = targets(G, 2)
    A = Downsample(2)
    res = restore.solve(A(x), A, G, method="latent", steps=6, seed=0, progress=False, n_init=8, n_starts=1,
                        restarts=0, lm_starts=0, loss={"mse": 1.0, "lpips": 0.1})
    assert torch.all(res.loss < res.history[0])


def test_progress_bar_runs(G, capsys):
    x = targets(G, 1)
    A = Downsample(2)
    restore.solve(A(x), A, G, method="latent", steps=3, seed=0, progress=True, n_init=4, n_starts=1, restarts=0, lm_starts=0)


def test_ramp_lr_shape():
    assert ramp_lr(0.5, 0.1) == pytest.approx(0.1)
    assert ramp_lr(1.0, 0.1) == pytest.approx(0.0)
    assert 0 < ramp_lr(0.01, 0.1, rampup=0.05) < 0.1


def test_masked_adam_matches_torch_and_skips_rows():
    torch.manual_seed(0)
    p0 = torch.randn(3, 4)
    a, b = p0.clone().requires_grad_(), p0.clone().requires_grad_()
    ours, ref = MaskedAdam({"x": [a]}), torch.optim.Adam([b], lr=0.01)
    for _ in range(5):
        for p in (a, b):
            p.grad = None
            (p.square().sum() + p.sum()).backward()
        ours.step({"x": 0.01}, torch.ones(3, dtype=torch.bool))
        ref.step()
    assert torch.allclose(a, b, atol=1e-6)
    a.grad = torch.ones_like(a)
    before = a.detach().clone()
    ours.step({"x": 0.01}, torch.tensor([True, False, True]))
    assert torch.equal(a[1], before[1]) and not torch.equal(a[0], before[0])


@pytest.mark.parametrize("active", [[1, 1, 1, 1, 1, 1], [1, 1, 0, 1, 1, 1], [0, 1, 0, 0, 1, 0]],
                         ids=["all", "few-inactive", "most-inactive"])
def test_masked_adam_rows_are_independent_on_every_path(active):
    """Whatever path a step takes (all rows, all but a few then theirs put back, the active rows
    alone), each active row gets the same bits as a solo run, and an inactive row's parameters
    and moments stay as they were even when its gradient is NaN."""
    torch.manual_seed(0)
    p0, grads = torch.randn(6, 7, 5), torch.randn(4, 6, 7, 5)
    active = torch.tensor(active, dtype=torch.bool)
    batched = p0.clone()
    opt = MaskedAdam({"x": [batched]})
    for k, g in enumerate(grads):
        batched.grad = torch.where(active[:, None, None] | (k < 2), g, torch.full_like(g, float("nan")))
        opt.step({"x": 0.05}, active | (k < 2))  # two steps for every row, then only the active ones
    for r in range(6):
        solo = p0[r:r + 1].clone()
        one = MaskedAdam({"x": [solo]})
        for k, g in enumerate(grads[: 4 if active[r] else 2]):
            solo.grad = g[r:r + 1]
            one.step({"x": 0.05}, torch.ones(1, dtype=torch.bool))
        assert torch.equal(batched[r], solo[0]), r
        assert torch.equal(opt.v[id(batched)][r], one.v[id(solo)][0]), r


@pytest.mark.slow
def test_real_dcgan_latent_recovers_in_range_targets():
    """dcgan-digiface64 (registry; skipped when it cannot be had): CS m=1000 of four in-range
    targets with the default latent preset: most come back exactly (> 40 dB; about one target in
    ten stalls, see benchmarks/results/quality.md), none below 25 dB."""
    import priors

    try:
        Gr = priors.load("dcgan-digiface64", progress=False)
    except Exception as exc:  # noqa: BLE001 - offline without a cached copy
        pytest.skip(f"dcgan-digiface64 not available: {exc}")
    x = Gr(Gr.sample_latents(4, seed=1234)).detach()
    A = CompressedSensing(1000, (3, 64, 64), seed=0)
    psnr = restore.metrics.psnr(restore.solve(A(x), A, Gr, method="latent", seed=0, progress=False).image, x)
    assert int((psnr > 40).sum()) >= 3 and bool((psnr > 25).all()), psnr


def test_nan_in_observation_is_refused_before_any_work():
    from torch import nn

    import priors

    G = priors.wrap(nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Unflatten(1, (3, 2, 2))), (4,))
    y = G(G.sample_latents(3, seed=0))
    y[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf values in sample\(s\) \[1\]"):
        restore.solve(y, lambda x: x, G, method="latent", steps=2, seed=0, progress=False)


def test_mgan_warm_start_hands_its_best_code_to_the_multi_code_phase(G):
    x = targets(G, 2)
    A = OPERATORS["cs"](2)
    res = restore.solve(A(x), A, G, method="mgan", restarts=0, refine_steps=0, steps=20, seed=0, progress=False, n_init=16, n_codes=3,
                        warm_start=0.5, n_starts=1, lm_starts=0)  # one start: a warm step is one pass
    warm = res.history[:10]
    assert torch.allclose(res.history[10], warm.min(0).values, rtol=1e-4, atol=1e-9)  # mixing starts at G(z_best)
    assert "z" not in res.latents and res.latents["codes"].shape[:2] == (2, 3)
    assert torch.all(res.loss <= warm.min(0).values)
    cold = restore.solve(A(x), A, G, method="mgan", restarts=0, refine_steps=1, steps=20, seed=0, progress=False, n_init=16, n_codes=3,
                         warm_start=0.0)
    assert cold.history.shape == (20, 2)
    with pytest.raises(ValueError, match="warm_start"):
        restore.solve(A(x), A, G, method="mgan", restarts=0, refine_steps=1, warm_start=1.0, progress=False)


@pytest.mark.parametrize("sigma, extra", [(1e-6, 6), (10.0, 0)])
def test_lm_starts_run_only_for_stuck_samples(G, sigma, extra):
    """A sample far above its noise floor gets LM starts (2 x 3 steps); a sample at its floor
    (sigma=10: every loss is below sigma**2) gets none, and no polish either."""
    x = targets(G, 2)
    A = OPERATORS["mask_per_sample"](2)
    kw = dict(steps=60, attempt_steps=10, seed=0, progress=False, n_init=16, n_starts=1, restarts=0,
              refine_steps=1, cg_iters=2, lm_steps=3, sigma=sigma, stall_window=1000)
    res = restore.solve(A(x), A, G, method="latent", lm_starts=2, **kw)
    base = restore.solve(A(x), A, G, method="latent", lm_starts=0, **kw)
    assert res.history.shape[0] - base.history.shape[0] == extra
    assert torch.equal(res.history[:len(base.history)].nan_to_num(-1), base.history.nan_to_num(-1))
    assert torch.all(res.loss <= base.loss)
    if sigma == 10.0:  # at the floor from the first step: Adam stops there, no polish
        assert base.history.shape[0] == 1


@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_consistency_projects_onto_the_observation(G, op):
    """The returned image reproduces the observation (project, noise-free, in range); the
    prior's own image is kept, and ``consistency="none"`` returns it as the image."""
    x = targets(G, 2)
    A = OPERATORS[op](2)
    res = run(A(x), A, G, "latent")
    assert (A(res.image) - A(x)).abs().max() < 1e-4 or op == "cs"  # CS: the clamp to [0, 1] may cut
    assert (A(res.image) - A(x)).square().mean() <= (A(res.prior_image) - A(x)).square().mean() + 1e-9
    raw = run(A(x), A, G, "latent", consistency="none")
    assert torch.equal(raw.image, raw.prior_image) and torch.equal(raw.prior_image, res.prior_image)


@pytest.mark.parametrize("method", sorted(FAST))
def test_self_validation_keeps_the_iterate_with_the_lowest_held_out_error(G, method):
    from restore.holdout import Restricted, holdout

    x = targets(G, 2)
    A = OPERATORS["sr"](2)
    y = A(x)
    split = holdout(y, A, 0.25, seed=0)
    held = Restricted(A, split.held)
    errors = []
    res = run(y, A, G, method, validate=0.25, consistency="none",
              callbacks=[lambda s: errors.append((held(s.image) - held.observe(y)).flatten(1).square().mean(1))])
    errors = torch.stack(errors)
    assert res.held_loss is not None and res.held_loss.shape == (2,)
    torch.testing.assert_close(res.held_loss, errors.min(0).values, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(res.held_loss, (held(res.image) - held.observe(y)).flatten(1).square().mean(1),
                               rtol=1e-4, atol=1e-7)
    assert run(y, A, G, method).held_loss is None


@pytest.mark.parametrize("op", ["mask_per_sample", "cs"])
@pytest.mark.parametrize("method", sorted(FAST))
def test_average_is_the_mean_of_independent_batch_independent_copies(G, method, op):
    """average=K: K copies per observation, started apart (disjoint candidate shares), each one
    what solving that observation alone gives; the image is their mean, consistent with y."""
    x = targets(G, 2)
    A = OPERATORS[op](2)
    y = A(x)
    res = run(y, A, G, method, average=3)
    assert res.samples.shape == (2, 3, *x.shape[1:]) and res.image.shape == x.shape
    torch.testing.assert_close(res.image, res.samples.mean(1))
    torch.testing.assert_close(res.spread, res.samples.std(1))
    assert res.loss.shape == (2,) and res.best_step.shape == (2, 3) and res.history.shape[1:] == (2, 3)
    assert all(v.shape[:2] == (2, 3) for v in res.latents.values())
    first = next(iter(res.latents.values()))
    assert not torch.allclose(first[:, 0], first[:, 1])  # the copies start (and end) apart
    assert float(res.spread.mean()) > 0
    if op == "mask_per_sample":
        assert float((A(res.image) - y).abs().max()) < 1e-6  # observed pixels exact in every copy
    alone = run(y[1:2], Mask(A.mask[1:2]) if op == "mask_per_sample" else A, G, method, average=3)
    assert torch.allclose(res.samples[1:2], alone.samples, atol=2e-4)


def test_average_option_is_validated(G):
    x = targets(G, 1)
    for bad in (0, 65, 2.5, True):
        with pytest.raises(ValueError, match="average"):
            run(Downsample(2)(x), Downsample(2), G, "latent", average=bad)
