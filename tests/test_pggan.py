"""PGGAN (mGANprior checkpoint layout): equality with the reference implementation on the
fixtures in tests/fixtures/pggan (see its README), split points, checkpoint validation, vmap."""
from pathlib import Path

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from priors import pggan

pytestmark = pytest.mark.usefixtures("raw_generator_output")

FIX = Path(__file__).parent / "fixtures" / "pggan"
CKPTS = {
    "pggan_tiny32": dict(latent_size=32, widths=(16, 16, 8, 4), fused_scale=False),
    "pggan_tiny16_fused": dict(latent_size=24, widths=(16, 16, 10), fused_scale=True),
    "pggan_gandissect16": dict(latent_size=20, widths=(16, 12, 6), fused_scale=False),
    "pggan_gandissect16_old": dict(latent_size=20, widths=(16, 12, 6), fused_scale=False),
}
LAYOUT = {"pggan_tiny32": "mganprior", "pggan_tiny16_fused": "mganprior",
          "pggan_gandissect16": "gandissect", "pggan_gandissect16_old": "gandissect-old"}
TOL = 1e-4


def _load(name):
    return pggan.from_checkpoint(FIX / f"{name}.pth")


def _ref(name):
    name = name.replace("_old", "")  # the old-name file holds the same tensors
    return torch.load(FIX / f"{name}_reference.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def g32():
    return _load("pggan_tiny32")


@pytest.mark.parametrize("name", sorted(CKPTS))
def test_config_inferred_from_checkpoint(name):
    G = _load(name)
    assert G.config == pggan.PGGANConfig(image_channels=3, **CKPTS[name])
    assert G.latent_shape == (CKPTS[name]["latent_size"],)
    assert G.resolution == 4 * 2 ** (len(CKPTS[name]["widths"]) - 1) and G.channels == 3
    assert len(G.blocks) == len(CKPTS[name]["widths"]) and G.discriminator is None
    assert G.layout == LAYOUT[name]
    assert not any(p.requires_grad for p in G.parameters()) and not G.training


@pytest.mark.parametrize("name", sorted(CKPTS))
def test_output_equals_reference(name):
    G, ref = _load(name), _ref(name)
    with torch.no_grad():
        out = G(ref["z"])
    native = out * 2 - 1  # output_range (-1, 1)
    assert out.shape == ref["image"].shape
    assert (native - ref["image"]).abs().max().item() < TOL


@pytest.mark.parametrize("k", range(5))
def test_multi_code_split_equals_mganprior(g32, k):
    """mGANprior's PGGAN_multi_z at composing_layer 2k == our features/from_features split at k."""
    ref = _ref("pggan_tiny32")
    z, alpha = ref[f"mgan{k}_z"], ref[f"mgan{k}_alpha"]
    B, N, D = z.shape
    with torch.no_grad():
        h = g32.features(z.reshape(B * N, D), k)
        h = h.reshape(B, N, *h.shape[1:])
        assert h.shape[2] == alpha.shape[2]
        fused = (h * alpha[..., None, None]).mean(dim=1)
        out = g32.from_features(fused, k) * 2 - 1
    assert (out - ref[f"mgan{k}_image"]).abs().max().item() < TOL


@pytest.mark.parametrize("k", range(5))
def test_multicode_parametrization_equals_mganprior(g32, k):
    """priors.multi_code.MultiCode with importance alpha / N is mGANprior's PGGAN_multi_z."""
    from priors.multi_code import MultiCode
    ref = _ref("pggan_tiny32")
    z, alpha = ref[f"mgan{k}_z"], ref[f"mgan{k}_alpha"]
    mc = MultiCode(g32, z, split=k)
    with torch.no_grad():
        mc.importance.copy_(alpha / z.shape[1])
        out = mc() * 2 - 1
    assert (out - ref[f"mgan{k}_image"]).abs().max().item() < TOL


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("k", range(4))
def test_split_consistency(fused, k):
    G = pggan.tiny(seed=3, fused_scale=fused)
    z = G.sample_latents(2, seed=1)
    with torch.no_grad():
        full = G(z)
        h = G.features(z, k)
        split = G.from_features(h, k)
    side = G.resolution // 2 ** (len(G.blocks) - k) if k else 1
    assert h.shape[-2:] == (side, side)
    assert torch.equal(full, split)


def test_tiny_shapes_and_seed():
    G = pggan.tiny()
    z = G.sample_latents(3, seed=0)
    assert G(z).shape == (3, 3, 16, 16)
    assert torch.equal(pggan.tiny(seed=1).blocks[0].conv0.weight, pggan.tiny(seed=1).blocks[0].conv0.weight)
    assert not torch.equal(pggan.tiny(seed=1).blocks[0].conv0.weight, pggan.tiny(seed=2).blocks[0].conv0.weight)


def _corrupt(sd, how):
    sd = dict(sd)
    if how == "shape":
        sd["layer3.conv.weight"] = torch.zeros(16, 15, 3, 3)
        return sd, "layer3.conv.weight"
    if how == "missing":
        del sd["layer5.wscale.bias"]
        return sd, "layer5.wscale.bias"
    if how == "unexpected":
        sd["layer2.extra"] = torch.zeros(1)
        return sd, "layer2.extra"
    if how == "rgb":
        sd["output1.conv.weight"] = torch.zeros(3, 8, 1, 1)
        return sd, "output1.conv.weight"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["shape", "missing", "unexpected", "rgb"])
def test_wrong_checkpoint_names_first_mismatch(tmp_path, how):
    sd = torch.load(FIX / "pggan_tiny32.pth", map_location="cpu", weights_only=True)
    bad, key = _corrupt(sd, how)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    with pytest.raises(ValueError, match="first mismatch.*" + key.replace(".", r"\.")):
        pggan.from_checkpoint(path)


@pytest.mark.parametrize("name,key,shape", [
    ("pggan_gandissect16", "layer3.wscale.b", (5,)),
    ("pggan_gandissect16_old", "features.4.conv.weight", (6, 6, 1, 1)),
    ("pggan_gandissect16", "output_16x16.conv.weight", (3, 5, 1, 1)),
])
def test_wrong_shape_named_in_the_files_own_layout(tmp_path, name, key, shape):
    sd = torch.load(FIX / f"{name}.pth", map_location="cpu", weights_only=True)
    sd[key] = torch.zeros(shape)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="first mismatch: '" + key.replace(".", r"\.") + "' has shape"):
        pggan.from_checkpoint(tmp_path / "bad.pth")


def test_sha256_prefix_checked():
    import hashlib
    path = FIX / "pggan_gandissect16.pth"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert pggan.from_checkpoint(path, sha256_prefix=digest[:8]).resolution == 16
    with pytest.raises(ValueError, match="does not start with"):
        pggan.from_checkpoint(path, sha256_prefix="00000000" if digest[:8] != "00000000" else "11111111")


def test_expected_architecture_mismatch_named():
    with pytest.raises(ValueError, match=r"first mismatch: 'layer0\.conv\.weight' has shape \(16, 32, 4, 4\), "
                                         r"expected \(512, 512, 4, 4\)"):
        pggan.from_checkpoint(FIX / "pggan_tiny32.pth", expect=dict(resolution=256))
    G = pggan.from_checkpoint(FIX / "pggan_tiny32.pth",
                              expect=dict(resolution=32, latent_size=32, fmaps_base=128, fmaps_max=16))
    assert G.config.widths == (16, 16, 8, 4)


def test_growing_checkpoint_rejected(tmp_path):
    sd = torch.load(FIX / "pggan_tiny32.pth", map_location="cpu", weights_only=True)
    sd["lod"] = torch.tensor(1.0)
    torch.save(sd, tmp_path / "lod.pth")
    with pytest.raises(ValueError, match="lod=1.0"):
        pggan.from_checkpoint(tmp_path / "lod.pth")


def test_not_a_pggan_checkpoint(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="layer0.conv.weight"):
        pggan.from_checkpoint(tmp_path / "x.pth")


def test_published_architectures_match_release_shapes():
    """Shapes listed for the 1024 CelebA-HQ release in InterFaceGAN's pggan_generator_model.py."""
    s = pggan.expected_shapes(pggan.PGGANConfig.official(1024))
    assert s["layer0.conv.weight"] == (512, 512, 4, 4) and s["layer8.conv.weight"] == (256, 512, 3, 3)
    assert s["layer17.conv.weight"] == (16, 16, 3, 3) and s["output4.conv.weight"] == (3, 256, 1, 1)
    assert s["output8.wscale.bias"] == (3,) and len(s) == 1 + 18 * 2 + 9 * 2
    s = pggan.expected_shapes(pggan.PGGANConfig.official(256))
    assert s["layer13.conv.weight"] == (64, 64, 3, 3) and "layer14.conv.weight" not in s


@pytest.mark.parametrize("entry", pggan.ENTRIES, ids=lambda e: e["name"])
def test_entries(entry):
    assert entry["family"] == "pggan" and entry["licence"] and entry["description"]
    f = entry["files"][0]
    assert f["filename"].endswith(".pth") and f["url"].startswith(("https://", "http://"))
    assert f["sha256"] is not None or entry["sha256_note"]
    cfg = pggan.PGGANConfig.official(**entry["kwargs"]["expect"])
    assert cfg.resolution == entry["resolution"] and cfg.latent_size == 512
    assert {e["name"] for e in pggan.ENTRIES} == {"pggan-celebahq-1024", "pggan-bedroom-256",
                                                 "pggan-churchoutdoor-256"}


@pytest.mark.parametrize("fused", [False, True])
def test_vmap_functional_call_over_stacked_copies(fused):
    G = pggan.tiny(seed=0, fused_scale=fused)
    copies = [G.finetunable_copy() for _ in range(3)]
    with torch.no_grad():
        for i, c in enumerate(copies):
            for p in c.parameters():
                p.add_(0.05 * i)
    params, buffers = stack_module_state(copies)
    z = torch.stack([G.sample_latents(2, seed=s) for s in range(3)])

    def run(p, b, zz):
        return functional_call(G, (p, b), (zz,))

    batched = vmap(run)(params, buffers, z)
    with torch.no_grad():
        loop = torch.stack([c(z[i]) for i, c in enumerate(copies)])
    assert (batched - loop).abs().max().item() < 1e-5


def test_gradients_reach_latent_and_finetuned_weights():
    G = pggan.tiny()
    z = G.sample_latents(2, seed=0).requires_grad_(True)
    G(z).square().mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    F = G.finetunable_copy()
    assert set(map(id, F.block_parameters(len(F.blocks)))) == set(map(id, F.parameters()))
    assert len(F.block_parameters(1)) == 4
    F(G.sample_latents(1, seed=0)).mean().backward()
    assert all(p.grad is not None for p in F.parameters())
