"""StyleGAN2 family: fidelity to rosinality/stylegan2-pytorch (fixtures), latent spaces,
truncation, noise, split points, functional/vmap use, and checkpoint loading errors."""
import argparse
import pickle
import warnings
from pathlib import Path

import pytest
import torch

from priors import stylegan2
from priors.base import Discriminator, Generator

pytestmark = pytest.mark.usefixtures("raw_generator_output")

FIX = Path(__file__).parent / "fixtures" / "stylegan2"
CKPT = FIX / "tiny_rosinality.pt"
TOL = 1e-4


@pytest.fixture(scope="module")
def ref():
    return torch.load(FIX / "reference_outputs.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def G():
    return stylegan2.from_checkpoint(CKPT)


def native(G, x):
    """[0, 1] images back to the network's [-1, 1] range."""
    return x * 2 - 1


# ---------------------------------------------------------------------------- fidelity
CASES = {
    "checkpoint_noise": lambda G, r: (G, r["z"], r["img_default"]),
    "w": lambda G, r: (G.in_space("w"), r["w"], r["img_w"]),
    "w+_style_mixing": lambda G, r: (G.in_space("w+"), r["wplus"], r["img_mix"]),
    "truncation": lambda G, r: (G.truncation(r["psi"], w_avg=r["mean_w"]), r["z"], r["img_trunc"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_images_match_reference(G, ref, case):
    view, latent, expected = CASES[case](G, ref)
    with torch.no_grad():
        out = native(G, view(latent))
    assert out.shape == expected.shape
    assert (out - expected).abs().max().item() < TOL


def test_explicit_noise_matches_reference(ref):
    G = stylegan2.from_checkpoint(CKPT)
    G.set_noise(ref["noise"])
    with torch.no_grad():
        out = native(G, G(ref["z"]))
    assert (out - ref["img_noise"]).abs().max().item() < TOL


def test_mapping_matches_reference(G, ref):
    with torch.no_grad():
        assert (G.mapping(ref["z"]) - ref["w"]).abs().max().item() < TOL


def test_discriminator_matches_reference(G, ref):
    D = G.discriminator
    assert isinstance(D, Discriminator)
    with torch.no_grad():
        score = D(ref["d_input"])
        feats = D.features(ref["d_input"])
    assert score.shape == (4,)
    assert (score - ref["d_score"]).abs().max().item() < TOL
    assert len(feats) == len(ref["d_features"])
    for a, b in zip(feats, ref["d_features"]):
        assert a.shape == b.shape and (a - b).abs().max().item() < TOL


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_discriminator_odd_batches(G, batch):
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        s = G.discriminator(x)
    assert s.shape == (batch,) and torch.isfinite(s).all()


# ---------------------------------------------------------------------------- checkpoint
def test_architecture_inferred_from_tensors(G):
    assert (G.resolution, G.style_dim, G.n_mlp, G.num_ws) == (32, 32, 2, 8)
    assert G.channels_by_res == {4: 32, 8: 32, 16: 24, 32: 16}
    assert G.discriminator.resolution == 32
    assert isinstance(G, Generator) and not any(p.requires_grad for p in G.parameters())


def test_args_namespace_loads_weights_only():
    ckpt = stylegan2.load_checkpoint_dict(CKPT)
    assert isinstance(ckpt["args"], argparse.Namespace) and ckpt["args"].size == 32
    with pytest.raises(pickle.UnpicklingError):  # what the allow-list is for
        torch.load(CKPT, map_location="cpu", weights_only=True)


def _save_modified(tmp_path, edit):
    ckpt = stylegan2.load_checkpoint_dict(CKPT)
    edit(ckpt)
    path = tmp_path / "modified.pt"
    torch.save(ckpt, path)
    return path


def _set(d, key, value):
    d[key] = value


EDITS = {
    "wrong_shape": (lambda c: _set(c["g_ema"], "convs.2.conv.weight", torch.zeros(1, 24, 31, 3, 3)),
                    "convs.2.conv.weight"),
    "missing_key": (lambda c: c["g_ema"].pop("to_rgbs.1.bias"), "to_rgbs.1.bias"),
    "unknown_key": (lambda c: _set(c["g_ema"], "extra.weight", torch.zeros(1)), "extra.weight"),
    "wrong_d_shape": (lambda c: _set(c["d"], "final_linear.0.weight", torch.zeros(32, 7)),
                      "final_linear.0.weight"),
    "args_mismatch": (lambda c: setattr(c["args"], "n_mlp", 8), "n_mlp"),
    "not_stylegan2": (lambda c: c.pop("g_ema"), "g_ema"),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_bad_checkpoint_raises_naming_the_problem(tmp_path, name):
    edit, needle = EDITS[name]
    path = _save_modified(tmp_path, edit)
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        stylegan2.from_checkpoint(path)


def test_expected_architecture_check(tmp_path):
    first = r"'input\.input' has shape \(1, 32, 4, 4\), expected \(1, 512, 4, 4\)"
    with pytest.raises(ValueError, match=first):
        stylegan2.from_checkpoint(CKPT, expect=dict(size=32, style_dim=32, n_mlp=2))
    widths = {4: 32, 8: 32, 16: 24, 32: 16}
    path = _save_modified(tmp_path, lambda c: None)
    expect = dict(size=32, style_dim=32, n_mlp=2, channels=widths)
    with pytest.warns(UserWarning, match="sha256"):
        stylegan2.from_checkpoint(path, expect=expect)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stylegan2.from_checkpoint(path, expect=expect)  # warns once per file
    with pytest.raises(ValueError, match=r"style\.2\.weight"):
        stylegan2.from_checkpoint(path, expect=dict(expect, n_mlp=1))


def test_latent_avg_and_bare_state_dict(tmp_path):
    ckpt = stylegan2.load_checkpoint_dict(CKPT)
    avg = torch.linspace(-1, 1, 32)
    torch.save({"g_ema": ckpt["g_ema"], "latent_avg": avg}, tmp_path / "conv.pt")
    G = stylegan2.from_checkpoint(tmp_path / "conv.pt")
    assert G.discriminator is None and G.w_avg_source == "checkpoint"
    assert torch.equal(G.w_avg, avg)
    torch.save(ckpt["g_ema"], tmp_path / "bare.pt")
    assert stylegan2.from_checkpoint(tmp_path / "bare.pt").resolution == 32


def test_pickle_needs_opt_in(tmp_path):
    ckpt = stylegan2.load_checkpoint_dict(CKPT)
    path = tmp_path / "network.pkl"
    with open(path, "wb") as f:
        pickle.dump({"g_ema": ckpt["g_ema"]}, f)
    with pytest.raises(ValueError, match="trust_pickle=True"):
        stylegan2.from_checkpoint(path)
    with pytest.warns(UserWarning, match="executes code"):
        G = stylegan2.from_checkpoint(path, trust_pickle=True)
    assert G.resolution == 32


def test_entries_schema():
    names = {e["name"] for e in stylegan2.ENTRIES}
    assert names == {"stylegan2-ffhq-256", "stylegan2-ffhq-1024"}
    for e in stylegan2.ENTRIES:
        assert e["family"] == "stylegan2" and e["licence"] and e["files"][0]["url"].startswith("https://")
        assert e["files"][0]["sha256"] is not None or e["sha256_note"]
        assert e["kwargs"]["expect"]["size"] == e["resolution"]


# ---------------------------------------------------------------------------- latent spaces
def test_spaces_consistent_with_z(G):
    z = G.sample_latents(3, seed=5)
    w = G.in_space("w").sample_latents(3, seed=5)
    wp = G.in_space("w+").sample_latents(3, seed=5)
    with torch.no_grad():
        assert torch.allclose(w, G.mapping(z))
        assert wp.shape == (3, G.num_ws, G.style_dim) and torch.equal(wp[:, 3], w)
        imgs = [G(z), G.in_space("w")(w), G.in_space("w+")(wp)]
    assert all((imgs[0] - x).abs().max() < 1e-5 for x in imgs[1:])
    assert imgs[0].min() >= -10 and G.in_space("w+").latent_shape == (8, 32)


def test_in_space_is_a_view_and_rejects_unknown(G):
    Gw = G.in_space("w")
    assert Gw.blocks is G.blocks and Gw.mapping is G.mapping and G.space == "z"
    with pytest.raises(ValueError, match="'s'"):
        G.in_space("s")
    with pytest.raises(ValueError, match=r"\(B, 32\)"):
        Gw(torch.zeros(2, 8, 32))


def test_truncation(G):
    z = G.sample_latents(3, seed=1)
    with torch.no_grad():
        t0 = G.truncation(0.0)(z)
        t1 = G.truncation(1.0)(z)
        full = G(z)
    assert (t0 - t0[:1]).abs().max() < 1e-6          # psi = 0: every sample is the mean image
    assert (t1 - full).abs().max() < 1e-6
    assert G.w_avg_source == "estimated"
    assert torch.equal(G.w_avg, G.estimate_w_avg(seed=0))  # seeded, so reproducible
    assert not torch.equal(G.w_avg, G.estimate_w_avg(n=512, seed=1))
    G.estimate_w_avg(seed=0)


# ---------------------------------------------------------------------------- noise
def test_noise_fixed_and_seeded():
    G = stylegan2.from_checkpoint(CKPT)
    z = G.sample_latents(2, seed=0)
    with torch.no_grad():
        a, b = G(z), G(z)
        G.set_noise_seed(3)
        c, c2 = G(z), G(z)
        G.set_noise_seed(4)
        d = G(z)
        G.set_noise_seed(3)
        c3 = G(z)
        G.set_noise_seed(None)
        e = G(z)
    assert torch.equal(a, b) and torch.equal(c, c2) and torch.equal(c, c3) and torch.equal(a, e)
    assert not torch.allclose(c, d) and not torch.allclose(a, c)
    with pytest.raises(ValueError, match="noise"):
        G.set_noise([torch.zeros(1, 1, 4, 4)])


def test_forward_leaves_buffers_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    G = stylegan2.tiny(seed=0)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with torch.no_grad():
        G(G.sample_latents(2, seed=0))
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    assert torch.equal(state, torch.random.get_rng_state())
    G2 = stylegan2.tiny(seed=0)
    assert all(torch.equal(v, G2.state_dict()[k]) for k, v in G.state_dict().items())


# ---------------------------------------------------------------------------- splits / DGP
@pytest.mark.parametrize("space", ["z", "w+"])
@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_split_consistency(G, space, k):
    view = G.in_space(space)
    z = view.sample_latents(2, seed=k)
    with torch.no_grad():
        h = view.features(z, k)
        out = view.from_features(h, k, z=z)
        full = view(z)
    channels = G.channels_by_res[4] if k == 0 else G.blocks[k - 1].out_channels + 3
    assert h.shape[1] == channels
    assert (out - full).abs().max() < 1e-6
    with pytest.raises(ValueError, match="needs the latent"):
        view.from_features(h, k)


def test_functional_call_vmap_over_stacked_params():
    from torch.func import functional_call, stack_module_state, vmap
    G = stylegan2.tiny(seed=0, with_discriminator=False)
    copies = [G.finetunable_copy() for _ in range(2)]
    with torch.no_grad():
        for p in copies[1].parameters():
            p.mul_(1.01)
    params, _ = stack_module_state(copies)
    z = G.sample_latents(2, seed=0)
    batched = vmap(lambda p, x: functional_call(G, p, (x,)))(params, z[:, None])
    for i, c in enumerate(copies):
        assert (batched[i] - c(z[i:i + 1])).abs().max() < 1e-5


def test_gradients_reach_w_plus():
    G = stylegan2.tiny(seed=2).in_space("w+")
    w = G.sample_latents(1, seed=0).requires_grad_(True)
    G(w).square().mean().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
    assert len(G.block_parameters(1)) == 1 + len(list(G.blocks[0].parameters()))


# ---------------------------------------------------------------------------- NVlabs layout
NV_CKPT = FIX / "nvlabs_tiny_state_dicts.pt"


@pytest.fixture(scope="module")
def nv():
    return (stylegan2.from_checkpoint(NV_CKPT),
            torch.load(FIX / "nvlabs_reference_outputs.pt", map_location="cpu", weights_only=True))


NV_CASES = {
    "const_noise": lambda G, r: (G, r["z"], r["img"]),
    "truncation_w_avg": lambda G, r: (G.truncation(r["psi"]), r["z"], r["img_trunc"]),
    "w+": lambda G, r: (G.in_space("w+"), r["wplus"], r["img_wplus"]),
}


@pytest.mark.parametrize("case", sorted(NV_CASES))
def test_nvlabs_state_dicts_match_reference(nv, case):
    G, r = nv
    view, latent, expected = NV_CASES[case](G, r)
    with torch.no_grad():
        assert (native(G, view(latent)) - expected).abs().max().item() < TOL
    assert G.w_avg_source == "checkpoint"


def test_nvlabs_discriminator_matches_reference(nv):
    G, r = nv
    with torch.no_grad():
        assert (G.discriminator(r["d_input"]) - r["d_score"]).abs().max().item() < TOL


def test_nvlabs_unconvertible_key_is_named(tmp_path):
    sd = torch.load(NV_CKPT, map_location="cpu", weights_only=True)
    sd["G_ema"]["mapping.embed.weight"] = torch.zeros(32, 10)
    torch.save(sd, tmp_path / "cond.pt")
    with pytest.raises(ValueError, match=r"mapping\.embed\.weight"):
        stylegan2.from_checkpoint(tmp_path / "cond.pt")


def test_nvlabs_pickle_with_opt_in(tmp_path):
    sd = torch.load(NV_CKPT, map_location="cpu", weights_only=True)
    with open(tmp_path / "network-snapshot.pkl", "wb") as f:
        pickle.dump(sd, f)
    with pytest.raises(ValueError, match="dnnlib"):
        stylegan2.from_checkpoint(tmp_path / "network-snapshot.pkl")
    with pytest.warns(UserWarning, match="trust_pickle"):
        G = stylegan2.from_checkpoint(tmp_path / "network-snapshot.pkl", trust_pickle=True)
    assert G.channels_by_res == {4: 16, 8: 16, 16: 16, 32: 8} and G.discriminator is not None
