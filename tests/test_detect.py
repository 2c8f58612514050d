"""priors.load(path) without family: the family is detected from the checkpoint's keys, for every
supported layout, and loading the detected family equals loading with it named."""
from pathlib import Path

import pytest
import torch
from torch import nn

import priors
from priors.detect import detect, read_checkpoint
from restore.cli.common import load_prior

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _seeded(net: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                noise = torch.randn(t.shape, generator=gen)
                t.copy_(noise.abs() + 0.5 if "var" in name else 0.2 * noise)
    return net


def _tutorial(nz: int) -> nn.Sequential:
    """A 16x16 DCGAN-tutorial generator taking ``nz`` input channels."""
    return _seeded(nn.Sequential(nn.ConvTranspose2d(nz, 8, 4, 1, 0, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                                 nn.ConvTranspose2d(4, 3, 4, 2, 1, bias=False), nn.Tanh()), 0)


def _mlp(out: int = 64) -> nn.Sequential:
    return _seeded(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, out), nn.Tanh()), 1)


def _write(tmp: Path, kind: str) -> Path:
    """Small checkpoints in the real formats of the families whose fixtures are reference outputs."""
    path = tmp / f"{kind}.pth"
    if kind == "dcgan-tutorial-dict":
        torch.save({"netG_state_dict": {"main." + k: v for k, v in _tutorial(20).state_dict().items()}}, path)
    elif kind == "dcgan-bare":
        torch.save(_tutorial(100).state_dict(), path)
    elif kind == "cdcgan":
        torch.save({"main." + k: v for k, v in _tutorial(104).state_dict().items()}, path)
    elif kind == "mlp":
        torch.save(_mlp().state_dict(), path)
    elif kind == "mlp-discriminator":
        torch.save(_mlp(out=1).state_dict(), path)
    return path


CASES = {  # name: (checkpoint, expected family, expected layout)
    "biggan-folder": (FIXTURES / "biggan/deep", "biggan", "pytorch-pretrained-biggan"),
    "biggan-file": (FIXTURES / "biggan/deep/pytorch_model.bin", "biggan", "pytorch-pretrained-biggan"),
    "biggan-pytorch": (FIXTURES / "biggan/bgp/G_ema.pth", "biggan-pytorch", "BigGAN-PyTorch G_ema"),
    "biggan-pytorch-flat": (FIXTURES / "biggan/bgp/G_ema_flat.pth", "biggan-pytorch", "BigGAN-PyTorch G_ema"),
    "stylegan2-rosinality": (FIXTURES / "stylegan2/tiny_rosinality.pt", "stylegan2", "rosinality"),
    "stylegan2-nvlabs": (FIXTURES / "stylegan2/nvlabs_tiny_state_dicts.pt", "stylegan2", "NVlabs state dicts"),
    "pggan-mganprior": (FIXTURES / "pggan/pggan_tiny32.pth", "pggan", "PGGAN"),
    "pggan-mganprior-fused": (FIXTURES / "pggan/pggan_tiny16_fused.pth", "pggan", "PGGAN"),
    "pggan-gandissect": (FIXTURES / "pggan/pggan_gandissect16.pth", "pggan", "PGGAN"),
    "pggan-gandissect-old": (FIXTURES / "pggan/pggan_gandissect16_old.pth", "pggan", "PGGAN"),
    "dcgan-tutorial-dict": ("dcgan-tutorial-dict", "dcgan", "DCGAN tutorial"),
    "dcgan-bare": ("dcgan-bare", "dcgan", "DCGAN tutorial"),
    "cdcgan": ("cdcgan", "cdcgan", "cDCGAN"),
    "mlp": ("mlp", "mlp", "MLP"),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request, tmp_path):
    where, family, layout = CASES[request.param]
    path = where if isinstance(where, Path) else _write(tmp_path, where)
    return path, family, layout


def _image(G: priors.Generator) -> torch.Tensor:
    z = G.sample_latents(2, seed=0)
    return G(z, torch.tensor([0, 1]) if G.n_classes else None)


def test_detected_family_loads_as_the_named_family(case):
    path, family, layout = case
    found = detect(path)
    assert (found.family, found.layout) == (family, layout)
    G = priors.load(path)
    assert G.detection == found and family in str(G.detection)
    named = priors.load(path, family=family)
    assert named.detection is None
    assert type(G) is type(named) and torch.equal(_image(G), _image(named))


def test_biggan_folder_with_named_family():
    G = priors.load(FIXTURES / "biggan/deep", family="biggan")
    assert (G.resolution, G.n_classes, G.detection) == (32, 1000, None)


def test_cli_uses_the_detection_and_says_so():
    with pytest.warns(UserWarning, match="detected family 'pggan'"):
        G = load_prior(str(FIXTURES / "pggan/pggan_gandissect16.pth"))
    assert G.detection.family == "pggan"


_SENTINEL = []


def _side_effect():  # what a malicious pickle would run
    _SENTINEL.append("ran")
    return {}


class _Evil:
    def __reduce__(self):
        return (_side_effect, ())


def _merged_stylegan2(tmp: Path) -> Path:
    ros = read_checkpoint(FIXTURES / "stylegan2/tiny_rosinality.pt")
    nv = torch.load(FIXTURES / "stylegan2/nvlabs_tiny_state_dicts.pt", weights_only=True)
    torch.save({"g_ema": ros["g_ema"], **nv}, tmp / "both.pt")
    return tmp / "both.pt"


BAD = {  # name: (make the file, error message pattern); more rows (fixture files) in test_bad_inputs.py
    "not-a-checkpoint": (lambda t: (t / "x.pt").write_bytes(b"x") and t / "x.pt", "not a PyTorch checkpoint"),
    "unknown-layout": (lambda t: torch.save({"w": torch.zeros(2)}, t / "u.pt") or t / "u.pt",
                       "matches no supported generator layout.*Looked for: biggan.*stylegan2.*pggan.*dcgan.*mlp"),
    "mlp-discriminator": (lambda t: _write(t, "mlp-discriminator"), "looks like a discriminator"),
    "ambiguous": (_merged_stylegan2, "ambiguous: it matches stylegan2 \\(rosinality.*stylegan2 \\(NVlabs"),
    "pickled-code": (lambda t: torch.save(_Evil(), t / "evil.pt") or t / "evil.pt",
                     "not loaded, as that would run code"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_undetectable_checkpoints_are_clear_errors(kind, tmp_path):
    make, pattern = BAD[kind]
    path = make(tmp_path)
    with pytest.raises(ValueError, match=pattern):
        priors.load(path)
    assert _SENTINEL == []
