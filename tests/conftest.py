"""Shared pytest fixtures: a ``device`` fixture (CPU, plus CUDA under the ``gpu`` marker) and
automatic skipping of ``gpu``-marked tests on machines without CUDA."""
import pytest
import torch


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request) -> torch.device:
    """Run a test on the CPU and, where CUDA exists, on the GPU too."""
    return torch.device(request.param)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def raw_generator_output(monkeypatch):
    """Generators return the exact affine image of their native output, unclamped: fidelity
    tests compare it with reference implementations' raw outputs."""
    from priors.base import Generator

    monkeypatch.setattr(Generator, "clamp_output", False)
