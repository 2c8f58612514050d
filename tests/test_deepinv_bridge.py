"""The deepinv bridge both ways: from_deepinv(physics) and restore.as_deepinv(prior) called as model(y, physics).

Needs the optional extra ``[deepinv]`` (``[dev]`` installs it); skipped without it.
"""
import pytest
import torch

import restore
from operators import from_deepinv
from test_user_operators import _tiny_prior

dinv = pytest.importorskip("deepinv")
torch.set_num_threads(1)


def _physics(m=20, seed=0):
    return dinv.physics.CompressedSensing(m=m, img_size=(1, 8, 8), rng=torch.Generator().manual_seed(seed))


def test_from_deepinv_is_the_physics_noiseless_operator():
    physics = _physics()
    op = from_deepinv(physics)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(op(x), physics.A(x), rtol=0, atol=0)
    torch.testing.assert_close(op.adjoint(op(x)), physics.A_adjoint(physics.A(x)), rtol=0, atol=0)
    assert op.input_shape == (1, 8, 8) and op.out_dims == (20,) and op.adjoint_check_error < 1e-5
    assert op.double().physics._A.dtype == torch.float64  # the physics is a submodule


def test_from_deepinv_errors_and_the_adjoint_warning():
    with pytest.raises(TypeError, match="needs a deepinv LinearPhysics .*got object"):
        from_deepinv(object())
    with pytest.raises(ValueError, match=r"does not record its image size .*pass in_shape=\(C, H, W\)"):
        from_deepinv(dinv.physics.LinearPhysics(A=lambda x: 2 * x, A_adjoint=lambda y: 2 * y))
    wrong = dinv.physics.LinearPhysics(A=lambda x: 2 * x, A_adjoint=lambda y: y, img_size=(1, 4, 4))
    with pytest.warns(UserWarning, match="A_adjoint is not the adjoint of A: relative error 5.00e-01"):
        from_deepinv(wrong)


def test_as_deepinv_reconstructs_like_solve_and_under_no_grad():
    G, physics = _tiny_prior(), _physics()
    x = G(G.sample_latents(2, seed=3)).detach()
    kwargs = dict(method="latent", steps=12, seed=0, progress=False, n_init=8, n_starts=1, restarts=0,
                  refine_steps=2, lm_starts=0)
    model = restore.as_deepinv(G, **kwargs)
    assert isinstance(model, torch.nn.Module)
    y = physics(x)
    with torch.no_grad():  # as deepinv's evaluation loops call it
        x_hat = model(y, physics)
    direct = restore.solve(y, from_deepinv(physics), G, **kwargs)
    torch.testing.assert_close(x_hat, direct.image, rtol=0, atol=0)
    assert x_hat.shape == x.shape and torch.all(model.last_result.loss < model.last_result.history[0])
    assert model(y, physics, steps=3).shape == x.shape  # per-call overrides


def test_as_deepinv_method_must_be_a_name():
    with pytest.raises(TypeError, match="method must be a string"):
        restore.as_deepinv(_tiny_prior(), method=None)
