"""Per-sample data-fit losses: mse, l1, LPIPS (offline SqueezeNet), dfeat, weighted sums."""
import pytest
import torch

from priors import mlp
from restore import losses
from restore.losses import build_loss, lpips_network, squeezenet_weights

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net():
    return lpips_network("cpu")


def pair(shape=(2, 3, 32, 32), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


@pytest.mark.parametrize("name,fn", [("mse", lambda d: d.square()), ("l1", lambda d: d.abs())])
def test_pixel_losses_per_sample(name, fn):
    a, b = pair((3, 5, 7))
    out = build_loss(name)(a, b)
    assert out.shape == (3,)
    assert torch.allclose(out, fn(a - b).flatten(1).mean(1))


def test_weighted_sum_and_default():
    a, b = pair((2, 10))
    assert torch.allclose(build_loss({"mse": 2.0, "l1": 0.5})(a, b), 2 * losses.mse(a, b) + 0.5 * losses.l1(a, b))
    assert build_loss(None) is losses.mse


def test_callable_passthrough_and_errors():
    fn = lambda p, y: (p - y).abs().flatten(1).amax(1)  # noqa: E731
    assert build_loss(fn) is fn
    with pytest.raises(ValueError, match="unknown loss 'ssd'"):
        build_loss("ssd")
    with pytest.raises(ValueError, match="at least one"):
        build_loss({})
    with pytest.raises(TypeError, match="loss must be"):
        build_loss(3)


def test_lpips_identical_zero_and_batched(net):
    a, b = pair()
    loss = build_loss("lpips", lpips_net=net)
    assert torch.allclose(loss(a, a), torch.zeros(2), atol=1e-6)
    both = loss(a, b)
    assert both.shape == (2,) and torch.all(both > 0)
    assert torch.allclose(loss(a[1:], b[1:]), both[1:], atol=1e-6)


def test_lpips_known_value(net):
    """Regression value on a fixed scikit-image crop (the lpips reference pairs give 0.7110 and
    0.1479 with these weights, checked when the weights were added)."""
    skimage = pytest.importorskip("skimage")
    img = torch.tensor(skimage.data.astronaut()[:64, 192:256]).permute(2, 0, 1)[None].float() / 255
    shifted = torch.roll(img, 2, dims=-1)
    val = float(build_loss("lpips", lpips_net=net)(img, shifted))
    assert val == pytest.approx(0.02748, abs=1e-3)


def test_lpips_gray_and_small_images(net):
    a, b = pair((2, 1, 8, 8))
    assert build_loss("lpips", lpips_net=net)(a, b).shape == (2,)


def test_lpips_rejects_non_images(net):
    a, b = pair((2, 100))
    with pytest.raises(ValueError, match="image-shaped"):
        build_loss("lpips", lpips_net=net)(a, b)


def test_squeezenet_weights_offline_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no download"):
        squeezenet_weights(tmp_path / "missing.pth")
    bad = tmp_path / "squeezenet1_1-features.pth"
    torch.save({"0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="sha256"):
        squeezenet_weights(bad)


def test_dfeat_needs_discriminator_and_works():
    G = mlp.tiny(seed=0)
    loss = build_loss("dfeat", prior=G)
    x = G(G.sample_latents(2, seed=0))
    assert torch.allclose(loss(x, x), torch.zeros(2))
    assert torch.all(loss(x, x.flip(0)) > 0)
    G.discriminator, disc = None, G.discriminator
    with pytest.raises(ValueError, match="discriminator"):
        build_loss("dfeat", prior=G)
