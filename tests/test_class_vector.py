"""Joint optimization of the class vector of conditional priors (``optimize_class``), on the tiny
conditional priors (cDCGAN, BigGAN-deep, BigGAN-PyTorch) x the three methods, <= 30 steps each.

Targets are rendered from latents of the solver's own initial pool (``G.sample_latents(n_init,
seed)``), so that each sample's initial code fits and the class is what is left to find.
"""
import pytest
import torch

import restore
from operators import Mask, masks
from priors import biggan, biggan_pytorch, cdcgan, dcgan
from priors.class_vector import ClassVector, as_probabilities
from restore import Stage
from restore.losses import mse
from restore.problem import Problem, draw_pool

torch.set_num_threads(1)

PRIORS = {"cdcgan": cdcgan.tiny, "biggan": biggan.tiny, "biggan-pytorch": biggan_pytorch.tiny}
FAST = {
    "latent": dict(n_init=8, n_starts=1, restarts=0, lm_starts=0, refine_steps=0),
    "mgan": dict(n_init=8, n_codes=2, restarts=0, refine_steps=1),
    "dgp": dict(n_init=8, stages=(Stage(20, 0.05, 0.0, 0), Stage(5, 0.02, 1e-3, 1)), refine_steps=0, average=1),
}
STEPS = {"latent": 25, "mgan": 25, "dgp": None}
LATENT_FROZEN = {"latent": dict(lr=0.0), "mgan": dict(lr=0.0, warm_start=0.0),
                 "dgp": dict(stages=(Stage(20, 0.0, 0.0, 0), Stage(5, 0.0, 1e-3, 1)))}
TRUE, WRONG = torch.tensor([1, 2, 3]), torch.tensor([0, 0, 0])
ROWS = [0, 3, 5]  # pool latents the targets are rendered from


@pytest.fixture(scope="module", params=sorted(PRIORS))
def G(request):
    return PRIORS[request.param](seed=0)


def _operators(G):
    return {"identity": lambda x: x, "mask": Mask(masks.random_pixels((G.resolution, G.resolution), keep=0.5, seed=0))}


def _solve(y, A, G, method, seed=0, **kw):
    opts = {**FAST[method], **kw}
    return restore.solve(y, A, G, method=method, steps=STEPS[method], seed=seed, progress=False, **opts)


def _start_mass(G):
    """Probability of a non-start class in the initial class vector (1% spread uniformly)."""
    return 0.01 / G.n_classes


@pytest.mark.parametrize("op", ["identity", "mask"])
@pytest.mark.parametrize("method", sorted(FAST))
def test_class_moves_toward_truth_from_a_wrong_class(G, method, op):
    """Latents frozen at their initial pick (the true ones), the class alone is optimized from a
    wrong start: the data fit drops and c_true gains far more than the other wrong classes."""
    A = _operators(G)[op]
    with torch.no_grad():
        y = A(G(G.sample_latents(FAST[method]["n_init"], seed=0)[ROWS], TRUE))
    res = _solve(y, A, G, method, c=WRONG, optimize_class=True, lr_class=0.3, **LATENT_FROZEN[method])
    assert torch.all(res.loss < res.history[0])
    p = res.latents["class"]
    assert p.shape == (3, G.n_classes) and torch.allclose(p.sum(1), torch.ones(3), atol=1e-5)
    p_true = p[torch.arange(3), TRUE]
    others = p.clone()
    others[:, 0] = 0
    others[torch.arange(3), TRUE] = 0
    assert p_true.mean() > 20 * _start_mass(G), p_true  # measured: >= 180x over 4 seeds x 9 cases
    assert p_true.mean() > 1.5 * others.sum(1).mean() / (G.n_classes - 2), (p_true, others)


@pytest.mark.parametrize("method", sorted(FAST))
def test_joint_latent_and_class_fit(G, method):
    """Latent and class optimized together from a wrong class: the fit drops and the class moves."""
    with torch.no_grad():
        y = G(G.sample_latents(8, seed=0)[ROWS], TRUE)
    res = _solve(y, lambda x: x, G, method, c=WRONG, optimize_class=True, lr_class=0.3)
    assert torch.all(res.loss < res.history[0]) and torch.all(res.nonfinite_steps == 0)
    start = ClassVector.from_class(WRONG, G.n_classes)()
    assert (res.latents["class"] - start).abs().amax(1).min() > 1e-3
    assert res.image.min() >= 0 and res.image.max() <= 1


@pytest.mark.parametrize("method", sorted(FAST))
def test_given_class_stays_fixed_by_default(method):
    G = cdcgan.tiny(seed=0)
    c = torch.tensor([1, 3])
    keep = c.clone()
    with torch.no_grad():
        y = G(G.sample_latents(2, seed=2), c)
    res = _solve(y, lambda x: x, G, method, c=c)
    assert "class" not in res.latents and torch.equal(c, keep)
    assert res.options["optimize_class"] is False


def _pool_pairs(G, y, n, chunk, seed):
    """Seeded (latent, class) initial pairs for ``y`` through the identity: ``(z, order, ids)``."""
    pool = draw_pool(Problem(G, y, lambda x: x, mse, seed), n, chunk, draw_classes=True)
    return pool.z, pool.order, pool.classes


def test_pool_pairs_pick_the_fitting_class(G):
    """Without ``c``, initial (latent, class) pairs are drawn from the seed: a sample rendered from
    one of them gets that pair first, hence its class."""
    pool, _, ids = _pool_pairs(G, torch.zeros(1, 3, G.resolution, G.resolution), 16, 16, 4)
    assert len(ids.unique()) > 1 and ids.shape == (16,)
    with torch.no_grad():
        y = G(pool[ROWS], ids[ROWS])
    _, order, ids2 = _pool_pairs(G, y, 16, 5, 4)  # chunking does not matter
    assert order[:, 0].tolist() == ROWS and torch.equal(ids, ids2)


@pytest.mark.parametrize("method", sorted(FAST))
def test_no_class_given_starts_from_best_pair(G, method):
    pool, _, ids = _pool_pairs(G, torch.zeros(1, 3, G.resolution, G.resolution), 8, 8, 4)
    with torch.no_grad():
        y = G(pool[ROWS], ids[ROWS])
    steps = {"latent": 2, "mgan": 2, "dgp": None}[method]
    kw = dict(stages=(Stage(1, 0.01, 0.0, 0), Stage(1, 0.01, 1e-4, 1)), average=1) if method == "dgp" else {}
    res = restore.solve(y, lambda x: x, G, method=method, steps=steps, seed=4, progress=False,
                        optimize_class=True, **{**FAST[method], **kw})
    assert res.latents["class"].argmax(1).tolist() == ids[ROWS].tolist()
    assert torch.all(res.loss < 1e-4), res.loss


def test_unconditional_prior_refuses_optimize_class():
    G = dcgan.tiny(seed=0)
    y = G(G.sample_latents(1, seed=0)).detach()
    with pytest.raises(ValueError, match="optimize_class=True needs a class-conditional prior"):
        restore.solve(y, lambda x: x, G, method="latent", steps=2, progress=False, optimize_class=True)


def test_bad_start_class_is_refused_before_work():
    G = cdcgan.tiny(seed=0)
    y = G(G.sample_latents(2, seed=0), torch.tensor([0, 1])).detach()
    with pytest.raises(ValueError, match="class ids must lie in 0..3"):
        restore.solve(y, lambda x: x, G, method="latent", c=torch.tensor([0, 9]), optimize_class=True,
                      progress=False)
    with pytest.raises(ValueError, match="lr_class"):
        restore.solve(y, lambda x: x, G, method="latent", c=torch.tensor([0, 1]), lr_class=-1.0, progress=False)


# every code path of the class: parallel starts + restarts + LM polish (latent), DGP's polish
PATHS = {
    # sigma far below every loss: every sample is stuck, so it restarts and runs an LM start
    "latent": dict(n_init=8, n_starts=2, restarts=1, lm_starts=1, lm_steps=2, sigma=1e-9, refine_steps=2,
                   attempt_steps=8, cg_iters=2),
    "mgan": dict(n_init=8, n_codes=2, restarts=0, refine_steps=1),
    "dgp": dict(n_init=8, stages=(Stage(8, 0.05, 0.0, 0), Stage(4, 0.02, 1e-3, 1)), refine_steps=2, average=1),
}


@pytest.mark.parametrize("given", [True, False])
@pytest.mark.parametrize("method", sorted(PATHS))
def test_seeds_reproduce_and_batch_independence(method, given):
    G = biggan_pytorch.tiny(seed=0)
    with torch.no_grad():
        y = G(G.sample_latents(3, seed=11), TRUE)
    c = WRONG if given else None
    steps = 10 if method == "mgan" else None  # latent: the default budget holds every phase
    solve = lambda yy, cc: restore.solve(yy, lambda x: x, G, method=method, steps=steps, seed=3, progress=False,  # noqa
                                         c=cc, optimize_class=True, lr_class=0.3, **PATHS[method])
    a, b = solve(y, c), solve(y, c)
    assert torch.equal(a.image, b.image) and torch.equal(a.latents["class"], b.latents["class"])
    alone = solve(y[1:2], None if c is None else c[1:2])
    assert torch.allclose(a.image[1:2], alone.image, atol=2e-4)
    assert torch.allclose(a.latents["class"][1:2], alone.latents["class"], atol=1e-4)
    assert torch.allclose(a.loss[1:2], alone.loss, rtol=1e-3, atol=1e-7)
    # the kept class and latent render the kept image (the LM polish keeps them together)
    if method == "latent":
        assert torch.allclose(G(a.latents["z"], a.latents["class"]), a.image, atol=1e-5)


def test_class_vector_unit():
    cv = ClassVector.from_class(torch.tensor([2, 0]), 4)
    p = cv()
    assert torch.allclose(p[0], torch.tensor([0.0025, 0.0025, 0.9925, 0.0025]))
    soft = torch.tensor([[0.0, 2.0, 2.0, 0.0]])
    assert torch.allclose(as_probabilities(soft, 4), torch.tensor([[0.0, 0.5, 0.5, 0.0]]))
    sub = cv.take(torch.tensor([1]))
    assert torch.equal(sub(), p[1:2])
    target = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    cv.set_probabilities(target)
    assert torch.allclose(cv(), target, atol=1e-6)
    (cv()[:, 1].sum()).backward()
    assert cv.logits.grad is not None and torch.isfinite(cv.logits.grad).all()
    with pytest.raises(ValueError, match=r"shape \(B, 4\)"):
        as_probabilities(torch.ones(2, 3), 4)
    with pytest.raises(ValueError, match="no positive entry"):
        as_probabilities(torch.zeros(1, 4), 4)
    with pytest.raises(ValueError, match="mix"):
        ClassVector.from_class(torch.tensor([0]), 4, mix=0.0)
