"""BigGAN in both checkpoint layouts against their reference implementations' outputs
(fixtures: tests/fixtures/biggan/README.md), plus truncation, class-input, split, loading-error and
torch.func behaviour."""
import shutil
from pathlib import Path

import pytest
import torch
from torch.func import functional_call, grad, vmap

from priors import biggan, biggan_pytorch

pytestmark = pytest.mark.usefixtures("raw_generator_output")

FIX = Path(__file__).parent / "fixtures" / "biggan"
TOL = 1e-4
torch.set_num_threads(1)


def _load_ref(name):
    return torch.load(FIX / name, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def deep():
    return biggan.from_checkpoint(FIX / "deep"), _load_ref("deep/reference.pt")


@pytest.fixture(scope="module")
def bgp():
    return biggan_pytorch.from_checkpoint(FIX / "bgp" / "G_ema.pth"), _load_ref("bgp/reference.pt")


def _native(G, x):
    lo, hi = G.output_range  # the references' outputs are in the native range
    return x * (hi - lo) + lo


# ---------------------------------------------------------------- fidelity: pytorch-pretrained-biggan
@pytest.mark.parametrize("t", [1.0, 0.4, 0.73])
@pytest.mark.parametrize("cls", ["class_ids", "class_vector_soft"])
def test_deep_matches_reference(deep, t, cls):
    G, ref = deep
    with torch.no_grad():
        out = G(ref["z"][t], ref[cls], truncation=t)
    want = ref["images"][t] if cls == "class_ids" else ref["images_soft"][t]
    assert (_native(G, out) - want).abs().max() < TOL


def test_deep_architecture_from_config(deep):
    G, _ = deep
    assert (G.latent_shape, G.resolution, G.n_classes, len(G.blocks)) == ((16,), 32, 1000, 3)
    assert [len(b) for b in G.blocks] == [2, 3, 2]  # attention joins the 16x16 block it follows


def test_deep_sample_latents_match_package(deep):
    G, ref = deep
    ns = ref["noise_sample"]
    z = G.sample_latents(ns["n"], seed=ns["seed"], truncation=ns["truncation"])
    assert torch.equal(z, ns["value"])
    assert z.abs().max() <= 2 * ns["truncation"]
    assert torch.equal(z, G.sample_latents(4, seed=123, truncation=0.5))
    assert not torch.equal(z, G.sample_latents(4, seed=124, truncation=0.5))


def test_deep_truncation_default_and_override(deep):
    G, ref = deep
    z, c = ref["z"][0.4], ref["class_ids"]
    with torch.no_grad():
        assert (_native(G, G(z, c)) - _native(G, G(z, c, truncation=1.0))).abs().max() == 0
        G.truncation = 0.4
        try:
            assert (_native(G, G(z, c)) - ref["images"][0.4]).abs().max() < TOL
            z4 = G.sample_latents(2, seed=3)
            assert torch.equal(z4, G.sample_latents(2, seed=3, truncation=0.4))
        finally:
            G.truncation = 1.0
        # z is used as given: truncation changes only the batch-norm statistics
        assert (G(z, c, truncation=0.4) - G(z, c, truncation=1.0)).abs().max() > 1e-3


@pytest.mark.parametrize("t", [0.0, -0.1, 1.5])
def test_deep_truncation_out_of_range(deep, t):
    G, ref = deep
    with pytest.raises(ValueError, match="truncation"):
        G(ref["z"][1.0], ref["class_ids"], truncation=t)
    with pytest.raises(ValueError, match="truncation"):
        G.sample_latents(2, seed=0, truncation=t)


# ---------------------------------------------------------------- fidelity: BigGAN-PyTorch / DGP
@pytest.mark.parametrize("cls", ["class_ids", "class_vector_soft"])
@pytest.mark.parametrize("suffix", ["", "_flat"])
def test_bgp_generator_matches_reference(cls, suffix):
    G = biggan_pytorch.from_checkpoint(FIX / "bgp" / f"G_ema{suffix}.pth")
    ref = _load_ref(f"bgp/reference{suffix}.pt")
    with torch.no_grad():
        out = G(ref["z"], ref[cls])
    want = ref["images"] if cls == "class_ids" else ref["images_soft"]
    assert (_native(G, out) - want).abs().max() < TOL
    assert (G.discriminator is None) == (suffix == "_flat")


def test_bgp_architecture_inferred(bgp):
    G, _ = bgp
    assert G.arch == dict(in_channels=[64, 64, 32, 16], out_channels=[64, 32, 16, 8],
                          attention=[False, False, True, False], bottom_width=4, n_classes=100,
                          shared_dim=16, hier=True, dim_z=20)
    assert (G.resolution, G.latent_shape, len(G.blocks)) == (64, (20,), 4)


def test_bgp_discriminator_matches_reference(bgp):
    G, ref = bgp
    D, x = G.discriminator, (ref["images"] + 1) / 2
    with torch.no_grad():
        assert (D(x, ref["class_ids"]) - ref["d_score"]).abs().max() < TOL
        assert (D(x) - ref["d_score_uncond"]).abs().max() < TOL
        feats = D.features(x, ref["class_ids"])
    assert len(feats) == len(ref["d_features"]) == 7
    for got, want in zip(feats, ref["d_features"]):
        assert got.shape == want.shape and (got - want).abs().max() < TOL


def test_bgp_discriminator_options(tmp_path):
    for name in ("G_ema.pth", "D.pth"):
        shutil.copy(FIX / "bgp" / name, tmp_path / name.replace(".pth", "_128.pth"))
    assert biggan_pytorch.from_checkpoint(tmp_path / "G_ema_128.pth").discriminator is not None
    assert biggan_pytorch.from_checkpoint(tmp_path / "G_ema_128.pth", discriminator=None).discriminator is None
    G = biggan_pytorch.from_checkpoint(FIX / "bgp" / "G_ema_flat.pth", discriminator=tmp_path / "D_128.pth")
    assert G.discriminator is not None


# ---------------------------------------------------------------- class inputs
def _models():
    return {"deep": biggan.tiny(), "bgp": biggan_pytorch.tiny()}


MODELS = _models()


@pytest.mark.parametrize("family", list(MODELS))
def test_class_ids_equal_one_hot(family):
    G = MODELS[family]
    z, ids = G.sample_latents(3, seed=0), torch.tensor([0, 4, 9])
    onehot = torch.nn.functional.one_hot(ids, G.n_classes).float()
    with torch.no_grad():
        assert (G(z, ids) - G(z, onehot)).abs().max() < 1e-6
        if G.discriminator is not None:
            x = G(z, ids)
            assert (G.discriminator(x, ids) - G.discriminator(x, onehot)).abs().max() < 1e-5


@pytest.mark.parametrize("family", list(MODELS))
@pytest.mark.parametrize("bad", [torch.tensor([0, 1]), torch.tensor([0, 1, 10]), torch.zeros(3, 7), None])
def test_bad_class_input(family, bad):
    G = MODELS[family]
    with pytest.raises(ValueError):
        G(G.sample_latents(3, seed=0), bad)


# ---------------------------------------------------------------- splits
@pytest.mark.parametrize("family", list(MODELS))
def test_split_consistency(family):
    G = MODELS[family]
    z, c = G.sample_latents(2, seed=1), torch.tensor([2, 7])
    with torch.no_grad():
        full = G(z, c)
        for k in range(len(G.blocks) + 1):
            h = G.features(z, k, c)
            assert (G.from_features(h, k, c, z=z) - full).abs().max() < 1e-6
    assert G.needs_latent_in_tail
    with pytest.raises(ValueError, match="latent"):
        G.from_features(G.features(z, 1, c), 1, c)


def test_deep_split_with_truncation():
    G = MODELS["deep"]
    z, c = G.sample_latents(2, seed=1, truncation=0.5), torch.tensor([2, 7])
    with torch.no_grad():
        h = G.features(z, 2, c, truncation=0.5)
        assert (G.from_features(h, 2, c, z=z, truncation=0.5) - G(z, c, truncation=0.5)).abs().max() < 1e-6


# ---------------------------------------------------------------- loading errors
def _corrupt_deep(tmp_path, edit):
    state = torch.load(FIX / "deep" / "pytorch_model.bin", weights_only=True)
    edit(state)
    shutil.copy(FIX / "deep" / "config.json", tmp_path / "biggan-deep-x-config.json")
    torch.save(state, tmp_path / "biggan-deep-x-pytorch_model.bin")
    return tmp_path / "biggan-deep-x-pytorch_model.bin"


@pytest.mark.parametrize("edit, match", [
    (lambda s: s.__setitem__("generator.layers.2.conv_1.weight_orig", torch.zeros(1, 2, 3, 3)),
     r"'generator\.layers\.2\.conv_1\.weight_orig' has shape \(1, 2, 3, 3\)"),
    (lambda s: s.pop("generator.layers.4.gamma"), r"missing tensor 'generator\.layers\.4\.gamma'"),
    (lambda s: s.__setitem__("generator.extra", torch.zeros(1)), r"unexpected tensor 'generator\.extra'"),
])
def test_deep_bad_checkpoint_names_first_mismatch(tmp_path, edit, match):
    with pytest.raises(ValueError, match=match):
        biggan.from_checkpoint(_corrupt_deep(tmp_path, edit))


def test_deep_config_named_like_registry_files(tmp_path):
    path = _corrupt_deep(tmp_path, lambda s: None)
    assert biggan.from_checkpoint(path).resolution == 32
    (tmp_path / "biggan-deep-x-config.json").write_text('{"z_dim": 16}')
    with pytest.raises(ValueError, match="lacks keys"):
        biggan.from_checkpoint(path)


@pytest.mark.parametrize("name, key, match", [
    ("G_ema.pth", "blocks.1.0.bn2.stored_var", r"'blocks\.1\.0\.bn2\.stored_var' has shape"),
    ("G_ema.pth", "output_layer.2.u0", r"'output_layer\.2\.u0' has shape"),
    ("D.pth", "blocks.2.0.conv2.bias", r"'blocks\.2\.0\.conv2\.bias' has shape"),
])
def test_bgp_bad_checkpoint_names_first_mismatch(tmp_path, name, key, match):
    for f in ("G_ema.pth", "D.pth"):
        shutil.copy(FIX / "bgp" / f, tmp_path / f)
    state = torch.load(tmp_path / name, weights_only=True)
    state[key] = torch.zeros(state[key].numel() + 1)
    torch.save(state, tmp_path / name)
    with pytest.raises(ValueError, match=match):
        biggan_pytorch.from_checkpoint(tmp_path / "G_ema.pth")


def test_bgp_ignores_dgp_instance_norm_tensors(tmp_path):
    state = torch.load(FIX / "bgp" / "G_ema_flat.pth", weights_only=True)
    state["blocks.0.0.in1.weight"] = torch.ones(8)  # DGP's GBlock saves unused InstanceNorm2d params
    state["blocks.0.0.in2.bias"] = torch.zeros(8)
    torch.save(state, tmp_path / "G_ema.pth")
    ref = _load_ref("bgp/reference_flat.pt")
    with torch.no_grad():
        out = biggan_pytorch.from_checkpoint(tmp_path / "G_ema.pth")(ref["z"], ref["class_ids"])
    assert (out * 2 - 1 - ref["images"]).abs().max() < TOL


def test_bgp_not_a_biggan_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "G_ema.pth")
    with pytest.raises(ValueError, match="shared.weight"):
        biggan_pytorch.from_checkpoint(tmp_path / "G_ema.pth")


# ---------------------------------------------------------------- torch.func (DGP batching)
def _stack(tensors, n):
    return {k: v.detach().unsqueeze(0).repeat(n, *[1] * v.dim()) for k, v in tensors}


@pytest.mark.parametrize("family", list(MODELS))
def test_vmap_functional_call(family):
    G, n = MODELS[family], 3
    z, c = G.sample_latents(n, seed=4), torch.tensor([1, 5, 8])
    params = _stack(G.named_parameters(), n)
    buffers = _stack(G.named_buffers(), n)

    def one(p, b, zi, ci):
        return functional_call(G, (p, b), (zi[None], ci[None]))[0]

    with torch.no_grad():
        assert (vmap(one)(params, buffers, z, c) - G(z, c)).abs().max() < 1e-5
    grads = vmap(grad(lambda p, b, zi, ci: one(p, b, zi, ci).square().mean()))(params, buffers, z, c)
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert grads[next(iter(params))].abs().sum() > 0
    before = {k: v.clone() for k, v in G.named_buffers()}
    G(z, c)
    assert all(torch.equal(before[k], v) for k, v in G.named_buffers())  # no in-place buffer updates


@pytest.mark.parametrize("family", list(MODELS))
def test_block_parameters_cover_generator(family):
    G = MODELS[family]
    own = {id(p) for n, p in G.named_parameters() if not n.startswith("discriminator.")}
    assert G.block_parameters(0) == []
    assert {id(p) for p in G.block_parameters(len(G.blocks))} == own


@pytest.mark.parametrize("family", list(MODELS))
def test_deep_prior_smoke(family):
    from priors.dgp import DeepPrior

    G = MODELS[family]
    z, c = G.sample_latents(2, seed=0), torch.tensor([3, 6])
    dgp = DeepPrior(G, z, blocks=len(G.blocks), c=c)
    dgp.unfreeze(len(G.blocks))
    out = dgp()
    assert (out - G(z, c)).abs().max() < 1e-5
    out.square().mean().backward()
    assert all(p.grad is not None for p in dgp.groups()["block0"])


@pytest.mark.parametrize("family", list(MODELS))
def test_multi_code_smoke(family):
    from priors.multi_code import MultiCode

    G = MODELS[family]
    z, c = G.sample_latents(6, seed=0).view(2, 3, -1), torch.tensor([3, 6])
    mc = MultiCode(G, z, split=2, c=c)
    with torch.no_grad():
        assert (mc() - G(z[:, 0], c)).abs().max() < 1e-5


def test_vmap_discriminator():
    D, n = MODELS["bgp"].discriminator, 3
    x, c = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2])
    params, buffers = _stack(D.named_parameters(), n), _stack(D.named_buffers(), n)
    out = vmap(lambda p, b, xi, ci: functional_call(D, (p, b), (xi[None], ci[None]))[0])(params, buffers, x, c)
    assert (out - D(x, c)).abs().max() < 1e-5


# ---------------------------------------------------------------- tiny models and registry entries
@pytest.mark.parametrize("family", list(MODELS))
def test_tiny_deterministic_and_in_range(family):
    module = biggan if family == "deep" else biggan_pytorch
    G1, G2 = module.tiny(seed=3), module.tiny(seed=3)
    z, c = G1.sample_latents(2, seed=0), torch.tensor([1, 2])
    with torch.no_grad():
        x = G1(z, c)
        assert torch.equal(x, G2(z, c)) and x.shape == (2, 3, 32, 32)
    assert 0 <= x.min() and x.max() <= 1 and x.std() > 1e-3
    assert not any(p.requires_grad for p in G1.parameters())


def test_deep_entries():
    names = [e["name"] for e in biggan.ENTRIES]
    assert names == ["biggan-deep-128", "biggan-deep-256", "biggan-deep-512"]
    for e in biggan.ENTRIES:
        assert e["family"] == "biggan" and "Apache-2.0" in e["licence"]
        suffixes = ("pytorch_model.bin", "config.json")
        assert [f["filename"].endswith(s) for f, s in zip(e["files"], suffixes)] == [True, True]
        assert all(f["url"].startswith("https://s3.amazonaws.com/models.huggingface.co/biggan/") for f in e["files"])
        assert all(f["sha256"] is None for f in e["files"]) and e["sha256_note"]
