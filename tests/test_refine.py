"""restore.refine.levenberg_marquardt: exact convergence, stall exit, per-sample independence."""
import pytest
import torch

from restore.refine import levenberg_marquardt


def _problem(seed=0, b=3, d=6, m=20):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, d, generator=g, dtype=torch.float64) / d ** 0.5
    f = lambda z, idx: torch.tanh(z @ W.T)  # noqa: E731  (B, d) -> (B, m), per sample
    z_true = 0.5 * torch.randn(b, d, generator=g, dtype=torch.float64)
    return f, z_true, W


def _loss(f, z, y):
    return (f(z, None) - y).square().mean(1)


@pytest.mark.parametrize("jacobian", ["dense", "free"])
def test_converges_exactly_from_a_nearby_start(jacobian):
    f, z_true, _ = _problem()
    y = f(z_true, None)
    z0 = z_true + 0.3 * torch.randn(z_true.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert (_loss(f, z0, y) > 1e-4).all()
    z = levenberg_marquardt(f, z0, y, steps=30, jacobian=jacobian)
    assert (_loss(f, z, y) < 1e-12).all()


@pytest.mark.parametrize("window", [3, 5])
def test_leaves_when_the_loss_stops_falling(window):
    """Out of range (no code fits y): the loss settles at its least-squares minimum; the sample
    leaves ``window`` steps after that instead of paying a Jacobian for every remaining step."""
    f, z_true, _ = _problem(m=40)
    y = f(z_true, None) + 0.1 * torch.randn(z_true.shape[0], 40, generator=torch.Generator().manual_seed(2),
                                            dtype=torch.float64)
    calls = []
    z = levenberg_marquardt(f, z_true.clone(), y, steps=200, stall_window=window,
                            on_step=lambda t, loss, ok, zz, n: calls.append(loss.clone()) and False)
    assert len(calls) <= window + 2, f"{len(calls)} steps: the stall exit did not fire"
    floor = _loss(f, z, y)
    assert (floor > 1e-4).all()  # truly out of range
    # the fit is at its minimum: the loss does not drop from where it left off
    more = []
    z_more = levenberg_marquardt(f, z.clone(), y, steps=200, stall_window=1000,
                                 on_step=lambda t, loss, ok, zz, n: more.append(t) and False)
    assert torch.allclose(_loss(f, z_more, y), floor, rtol=1e-3)
    assert len(more) > 2 * (window + 2)  # without the stall exit it keeps paying for tiny gains


@pytest.mark.parametrize("jacobian", ["dense", "free"])
def test_samples_are_independent(jacobian):
    f, z_true, _ = _problem(b=4)
    y = f(z_true, None)
    z0 = z_true + 0.5 * torch.randn(z_true.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    together = levenberg_marquardt(f, z0.clone(), y, steps=15, jacobian=jacobian)
    for i in range(4):
        alone = levenberg_marquardt(f, z0[i:i + 1].clone(), y[i:i + 1], steps=15, jacobian=jacobian)
        torch.testing.assert_close(alone, together[i:i + 1], atol=1e-10, rtol=0)
