"""Inversion smoke tests on every generator family (tiny random-weight instances, CPU).

For each family's ``tiny()`` (StyleGAN2 in its z, w and w+ spaces; conditional ones with a given
class) ``restore.solve`` runs ``latent``, ``mgan`` at every split point and ``dgp`` with stages
unfreezing the blocks from the first to the last, for a few steps on small operators (Mask,
Downsample, CompressedSensing). Checked: the data-fit loss drops, images are finite and in
``[0, 1]``, seeds reproduce, the mgan codes run through the head as one batch of ``B * N``, DGP
fine-tunes the ``B`` samples in one batched call and never modifies the shared prior, and the
``dfeat`` loss runs on families whose tiny instance has a discriminator.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import restore
from operators import CompressedSensing, Downsample, Mask, masks
from priors import biggan, biggan_pytorch, cdcgan, dcgan, mlp, pggan, stylegan2
from priors.dgp import load_finetuned
from restore import Stage

# family -> a fresh tiny generator (cheap: a few ms each after the first import)
FAMILIES = {
    "dcgan": dcgan.tiny, "cdcgan": cdcgan.tiny, "mlp": mlp.tiny, "pggan": pggan.tiny,
    "stylegan2": stylegan2.tiny, "biggan": biggan.tiny, "biggan-pytorch": biggan_pytorch.tiny,
}
# test id -> (family, latent space)
VARIANTS = {
    "dcgan": ("dcgan", "z"), "cdcgan": ("cdcgan", "z"), "mlp": ("mlp", "z"), "pggan": ("pggan", "z"),
    "stylegan2-z": ("stylegan2", "z"), "stylegan2-w": ("stylegan2", "w"), "stylegan2-w+": ("stylegan2", "w+"),
    "biggan": ("biggan", "z"), "biggan-pytorch": ("biggan-pytorch", "z"),
}
N_BLOCKS = {"dcgan": 3, "cdcgan": 3, "mlp": 3, "pggan": 3, "stylegan2": 4, "biggan": 3, "biggan-pytorch": 3}
WITH_DISCRIMINATOR = ["dcgan", "mlp", "stylegan2-z", "biggan-pytorch"]
WITHOUT_DISCRIMINATOR = ["cdcgan", "pggan", "biggan"]
CONDITIONAL = ["cdcgan", "biggan", "biggan-pytorch"]
OPERATORS = ("mask", "down", "cs")
B = 2            # observations per solve
FAST = dict(n_init=16, init_chunk=16, progress=False)

def _prior(variant: str):
    """``(G, G_space, c)``: a fresh tiny generator, its view in the variant's latent space and
    class ids ``(B,)`` (None when unconditional)."""
    family, space = VARIANTS[variant]
    G = FAMILIES[family](seed=0)
    c = torch.tensor([1, 3]) if G.n_classes else None
    return G, G.in_space(space), c


def _operator(kind: str, G):
    C, R = G.channels, G.resolution
    if kind == "mask":
        return Mask(masks.random_pixels((1, 1, R, R), keep=0.5, seed=0))
    if kind == "down":
        return Downsample(2)
    if kind == "cs":
        return CompressedSensing(min(64, C * R * R // 2), (C, R, R), seed=0)
    raise ValueError(f"operator kind must be one of {OPERATORS}, got {kind!r}")


@torch.no_grad()
def _observe(G, c, op):
    """An in-range target ``G(z)`` (latent seed 1234) seen through ``op``: ``(B, ...)``."""
    return op(G(G.sample_latents(B, seed=1234), c))


def _check_result(res, G, steps: int, drop: float = 0.95) -> None:
    """Shapes, range, finiteness and a per-sample data-fit drop of at least ``1 - drop``."""
    assert res.image.shape == (B, G.channels, G.resolution, G.resolution)
    assert torch.isfinite(res.image).all()
    assert res.image.min() >= 0 and res.image.max() <= 1
    # Adam steps, plus the Levenberg-Marquardt polish steps where the method ran them
    refine = res.options.get("refine_steps", 0) or 0
    assert res.history.shape[1] == B and steps <= res.history.shape[0] <= steps + refine, res.history.shape
    assert torch.isfinite(res.history).all() and int(res.nonfinite_steps.sum()) == 0
    first = res.history[0]
    assert (res.loss <= drop * first).all(), f"data fit did not drop: first {first.tolist()}, best {res.loss.tolist()}"


def _snapshot(G) -> dict:
    """Copies of every parameter and buffer (StyleGAN2's noise inputs excepted: a solve fixes
    them from its seed by design)."""
    state = {f"param:{n}": p.detach().clone() for n, p in G.named_parameters()}
    state.update({f"buffer:{n}": b.detach().clone() for n, b in G.named_buffers() if ".noise_" not in n})
    return state


def _dgp_stages(n_blocks: int):
    """A latent-only stage, then one stage per block count 1..n_blocks (first -> last unfrozen)."""
    return (Stage(4, 0.1, 0.0, 0),) + tuple(Stage(3, 0.05, 1e-3, k) for k in range(1, n_blocks + 1))


def _head_module(block):
    """The module the family calls for ``block`` (BigGAN iterates a ModuleList's layers)."""
    return block[0] if isinstance(block, nn.ModuleList) else block


class _CallLog:
    """Forward pre-hook recording the batch size of each call, with step marks from a callback."""

    def __init__(self, module):
        self.sizes, self.marks = [], []
        self.handle = module.register_forward_pre_hook(lambda mod, args: self.sizes.append(args[0].shape[0]))

    def callback(self, state):
        self.marks.append(len(self.sizes))
        return False

    def per_step(self):
        """Batch sizes of the calls made in steps 1.. (step 0 shares its span with set-up work)."""
        return [self.sizes[a:b] for a, b in zip(self.marks, self.marks[1:])]


def _split_cases():
    return [pytest.param(v, k, id=f"{v}-split{k}") for v, (f, _) in VARIANTS.items() for k in range(N_BLOCKS[f] + 1)]


# ----------------------------------------------------------------------------- latent
@pytest.mark.parametrize("variant", VARIANTS)
def test_latent_inverts(variant):
    G, Gs, c = _prior(variant)
    op = _operator(OPERATORS[list(VARIANTS).index(variant) % 3], G)
    res = restore.solve(_observe(G, c, op), op, G, method="latent", steps=8, seed=0, c=c, space=VARIANTS[variant][1],
                        n_starts=1, restarts=0, lm_starts=0, refine_steps=0, **FAST)
    _check_result(res, G, 8)
    assert res.latents["z"].shape == (B, *Gs.latent_shape)


# Levenberg-Marquardt polish after Adam: 2 steps; StyleGAN2's w+ (256 entries in the tiny model)
# costs ~2 s a step on one CPU thread, so it is left to slow runs
@pytest.mark.parametrize("variant", [v if v != "stylegan2-w+" else pytest.param(v, marks=pytest.mark.slow)
                                     for v in VARIANTS])
def test_latent_refine_polishes_every_family(variant):
    G, Gs, c = _prior(variant)
    op = _operator(OPERATORS[list(VARIANTS).index(variant) % 3], G)
    adam, refine = 4, 2
    res = restore.solve(_observe(G, c, op), op, G, method="latent", attempt_steps=adam, seed=0, c=c,  # default budget
                        space=VARIANTS[variant][1], n_starts=1, restarts=0, lm_starts=0, refine_steps=refine,
                        cg_iters=4, **FAST)
    _check_result(res, G, adam + refine)
    polish = res.history[adam:]
    assert (polish <= res.history[:adam].min(0).values * (1 + 1e-6)).all(), "LM starts from the best Adam iterate"
    assert (polish[1:] <= polish[:-1]).all(), "LM only accepts steps that lower the loss"


# ----------------------------------------------------------------------------- mgan
@pytest.mark.parametrize("variant,split", _split_cases())
def test_mgan_every_split(variant, split):
    G, Gs, c = _prior(variant)
    assert len(G.blocks) == N_BLOCKS[VARIANTS[variant][0]], "update N_BLOCKS so every split point is covered"
    op = _operator(OPERATORS[split % 3], G)
    res = restore.solve(_observe(G, c, op), op, G, method="mgan", warm_start=0.0, steps=6, seed=0, c=c, space=VARIANTS[variant][1],
                        split=split, n_codes=4, **FAST)
    _check_result(res, G, 6)
    assert res.latents["codes"].shape == (B, 4, *Gs.latent_shape)
    assert res.latents["importance"].shape[:2] == (B, 4)
    assert ("tail" in res.latents) == G.needs_latent_in_tail
    assert res.options["split"] == split


@pytest.mark.parametrize("variant", VARIANTS)
def test_mgan_codes_run_as_one_batch(variant):
    """Each step calls the head block once on all B * N codes and the tail block once on B."""
    G, Gs, c = _prior(variant)
    n_codes, steps = 5, 6
    op = _operator("down", G)
    y = _observe(G, c, op)
    head, tail = _CallLog(_head_module(G.blocks[0])), _CallLog(_head_module(G.blocks[-1]))
    restore.solve(y, op, G, method="mgan", warm_start=0.0, steps=steps, seed=0, c=c, space=VARIANTS[variant][1], split=1,
                  n_codes=n_codes, callbacks=(head.callback, tail.callback), **FAST)
    assert head.per_step() == [[B * n_codes]] * (steps - 1)
    assert tail.per_step() == [[B]] * (steps - 1)


# ----------------------------------------------------------------------------- dgp
@pytest.mark.parametrize("variant", [v for v in VARIANTS])
def test_dgp_unfreezes_first_to_last(variant):
    G, Gs, c = _prior(variant)
    n = len(G.blocks)
    op = _operator(OPERATORS[list(VARIANTS).index(variant) % 3], G)
    y = _observe(G, c, op)
    before = _snapshot(G)
    log = _CallLog(_head_module(G.blocks[0]))
    stages = _dgp_stages(n)
    # no latent polish: here the fine-tuning stages must do the fitting
    res = restore.solve(y, op, G, method="dgp", seed=0, c=c, space=VARIANTS[variant][1], stages=stages, average=1,
                        callbacks=(log.callback,), refine_steps=0, **FAST)
    steps = sum(s.steps for s in stages)
    _check_result(res, G, steps)
    # the shared prior is untouched: same weights and statistics, still frozen, no gradients
    after = _snapshot(G)
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"the shared prior was modified: {changed}"
    assert all(not p.requires_grad and p.grad is None for p in G.parameters())
    # every block was unfrozen; the B fine-tunings run as one batched call per step
    assert res.finetuned["blocks"] == list(range(n))
    assert log.per_step()[-1] == [1], "blocks[0] must be called once per step (vmap over the B samples)"
    params = res.finetuned["params"]
    assert all(v.shape[0] == B for v in params.values())
    shared = dict(G.named_parameters())
    assert res.best_step.min() >= stages[0].steps, "the best iterate should come from a fine-tuning stage"
    assert any(not torch.equal(v[b], shared[k]) for k, v in params.items() for b in range(B))
    # each sample's fine-tuned generator at its best latent renders its best image (with the
    # solve's noise inputs, for StyleGAN2)
    z = res.latents["z"]
    G.set_noise_seed(res.options["seed"])
    for b in range(B):
        Gb = load_finetuned(Gs, params, b)
        with torch.no_grad():
            img = Gb(z[b:b + 1], None if c is None else c[b:b + 1])
        torch.testing.assert_close(img[0], res.prior_image[b], atol=2e-5, rtol=0)


# ----------------------------------------------------------------------------- reproducibility
def _method_cases(variants, methods):
    return [pytest.param(v, m, id=f"{v}-{m}")
            for v in variants for m in methods]


@pytest.mark.parametrize("variant,method", _method_cases(VARIANTS, ["latent", "mgan", "dgp"]))
def test_seed_reproduces(variant, method):
    G, Gs, c = _prior(variant)
    op = _operator("mask", G)
    y = _observe(G, c, op)
    kw = {"latent": dict(steps=3, n_starts=2, restarts=0, lm_starts=0, refine_steps=0), "mgan": dict(steps=3, n_codes=3, split=1, restarts=0, refine_steps=1),
          "dgp": dict(stages=(Stage(1, 0.1, 0.0, 0), Stage(2, 0.05, 1e-3, len(G.blocks))), average=1)}[method]
    run = lambda seed: restore.solve(y, op, G, method=method, seed=seed, c=c, space=VARIANTS[variant][1],  # noqa: E731
                                     **kw, **FAST)
    first, again = run(7), run(7)
    assert torch.equal(first.image, again.image)
    assert torch.equal(first.history, again.history)
    assert all(torch.equal(first.latents[k], again.latents[k]) for k in first.latents)
    assert first.options == again.options and first.options["seed"] == 7


def test_different_seeds_differ():
    G, _, _ = _prior("stylegan2-z")
    op = _operator("mask", G)
    y = _observe(G, None, op)
    a, b = (restore.solve(y, op, G, method="mgan", restarts=0, refine_steps=1, steps=3, seed=s, n_codes=3, **FAST) for s in (1, 2))
    assert not torch.equal(a.latents["codes"], b.latents["codes"])


def test_solve_leaves_the_prior_rendering_unchanged():
    G, _, _ = _prior("stylegan2-z")
    z = G.sample_latents(1, seed=0)
    with torch.no_grad():
        before = G(z)
    op = _operator("down", G)
    restore.solve(op(before), op, G, method="latent", steps=1, seed=5, n_starts=1, refine_steps=0, **FAST)
    with torch.no_grad():
        assert torch.equal(G(z), before)


# ----------------------------------------------------------------------------- dfeat
@pytest.mark.parametrize("variant,method", _method_cases(WITH_DISCRIMINATOR, ["latent", "dgp"]))
def test_dfeat_loss_runs_with_discriminator(variant, method):
    """DGP's loss (MSE plus discriminator-feature L1) and the feature loss alone both optimize."""
    G, Gs, c = _prior(variant)
    assert G.discriminator is not None
    op = _operator("mask", G)
    y = _observe(G, c, op)
    if method == "dgp":
        stages = (Stage(3, 0.1, 0.0, 0), Stage(5, 0.05, 1e-3, len(G.blocks)))
        res = restore.solve(y, op, G, method="dgp", seed=0, c=c, loss={"mse": 1.0, "dfeat": 0.1}, stages=stages, average=1,
                            **FAST)
    else:
        res = restore.solve(y, op, G, method="latent", steps=8, seed=0, c=c, loss="dfeat", n_starts=1,
                            restarts=0, lm_starts=0, **FAST)
    _check_result(res, G, 8)


@pytest.mark.parametrize("variant", WITHOUT_DISCRIMINATOR)
def test_dfeat_loss_refused_without_discriminator(variant):
    G, _, c = _prior(variant)
    op = _operator("mask", G)
    with pytest.raises(ValueError, match="discriminator"):
        restore.solve(_observe(G, c, op), op, G, method="latent", steps=2, seed=0, c=c, loss="dfeat", **FAST)


# ----------------------------------------------------------------------------- conditional
@pytest.mark.parametrize("variant", CONDITIONAL)
def test_class_ids_equal_one_hot_vectors(variant):
    G, _, c = _prior(variant)
    op = _operator("down", G)
    y = _observe(G, c, op)
    one_hot = F.one_hot(c, G.n_classes).float()
    ids, vec = (restore.solve(y, op, G, method="mgan", steps=6, seed=0, c=cc, n_codes=3, restarts=0,
                                   refine_steps=1, **FAST) for cc in (c, one_hot))
    torch.testing.assert_close(ids.image, vec.image, atol=1e-5, rtol=0)
    torch.testing.assert_close(ids.history, vec.history, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("variant", CONDITIONAL)
def test_soft_class_vector_inverts(variant):
    G, _, _ = _prior(variant)
    soft = torch.softmax(torch.randn(B, G.n_classes, generator=torch.Generator().manual_seed(0)), 1)
    op = _operator("cs", G)
    res = restore.solve(_observe(G, soft, op), op, G, method="latent", steps=12, seed=0, c=soft,
                        n_starts=1, restarts=0, lm_starts=0, refine_steps=0, **FAST)
    _check_result(res, G, 12)


@pytest.mark.parametrize("variant", CONDITIONAL)
def test_conditional_prior_needs_a_class(variant):
    G, _, c = _prior(variant)
    op = _operator("mask", G)
    with pytest.raises(ValueError, match="class"):
        restore.solve(_observe(G, c, op), op, G, method="mgan", restarts=0, refine_steps=1, steps=2, seed=0, n_codes=2, **FAST)
