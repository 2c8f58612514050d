"""Operators from the user's own model: Matrix (dense and sparse) and from_callable; every new operator in a solve.

The shared properties (adjoint, VJP, gradcheck, pinv, norm, seeds, dtypes, specs) run over these
operators in ``test_operators.py``; here: input formats, errors, the adjoint warning, and a solve.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse
import torch
from torch import nn

import priors
import restore
from operators import Matrix, PartialFourier, SinglePixel, from_callable, from_spec, masks

torch.set_num_threads(1)


def _dense_and_sparse(seed=0, m=9, n=16, density=0.4):
    sp = scipy.sparse.random(m, n, density=density, format="coo", random_state=seed)
    return sp.toarray(), sp


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "numpy", "torch", "torch_sparse", "list"])
def test_every_input_format_is_the_same_operator(fmt):
    dense, sp = _dense_and_sparse()
    M = {"csr": sp.tocsr(), "csc": sp.tocsc(), "coo": sp, "numpy": dense, "torch": torch.from_numpy(dense),
         "torch_sparse": torch.from_numpy(dense).to_sparse_csr(), "list": dense.tolist()}[fmt]
    op = Matrix(M, (1, 4, 4))
    assert op.sparse == (fmt in ("csr", "csc", "coo", "torch_sparse"))
    assert all(b.dtype == torch.float64 for b in op.buffers() if b.is_floating_point())
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    y = torch.rand(3, 9, dtype=torch.float64)
    expected = torch.from_numpy(dense)
    torch.testing.assert_close(op(x), x.reshape(3, 16) @ expected.T, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(op.adjoint(y), (y @ expected).reshape(3, 1, 4, 4), rtol=1e-13, atol=1e-13)


def test_coo_duplicates_are_summed_and_explicit_zeros_dropped():
    coo = scipy.sparse.coo_matrix(([1.0, 2.0, 0.0, 5.0], ([0, 0, 1, 1], [3, 3, 0, 2])), shape=(2, 4))
    op = Matrix(coo, (4,))
    x = torch.tensor([[1.0, 10.0, 100.0, 1000.0]], dtype=torch.float64)
    torch.testing.assert_close(op(x), torch.tensor([[3000.0, 500.0]], dtype=torch.float64))
    assert op.col.tolist() == [3, 2]  # one stored entry per row after summing and dropping zeros


def test_float32_inputs_stay_float32_and_float64_inputs_float64():
    assert Matrix(np.ones((2, 4), np.float32), (4,)).matrix.dtype == torch.float32
    assert Matrix(np.ones((2, 4), np.int64), (4,)).matrix.dtype == torch.float32
    assert Matrix(np.ones((2, 4)), (4,)).matrix.dtype == torch.float64
    sp32 = scipy.sparse.random(3, 4, density=0.5, format="csr", random_state=0, dtype=np.float32)
    op = Matrix(sp32, (4,))
    assert op.val.dtype == torch.float32 and op.col.dtype == torch.int64
    assert from_spec(op.spec()).val.dtype == torch.float32
    assert op.double().val.dtype == torch.float64 and op.col.dtype == torch.int64


def test_dense_pinv_is_the_minimum_norm_least_squares_solution_of_a_rank_deficient_matrix():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(12, 3, generator=gen, dtype=torch.float64) @ torch.randn(3, 20, generator=gen, dtype=torch.float64)
    op = Matrix(M, (1, 4, 5))  # rank 3: CGLS would need many iterations, lstsq is exact
    y = torch.randn(2, 12, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(op.pinv(y).reshape(2, 20), y @ torch.linalg.pinv(M).T, rtol=1e-9, atol=1e-9)


def test_sparse_products_are_reproducible_and_store_only_the_nonzeros():
    _, sp = _dense_and_sparse(seed=1, m=40, n=64, density=0.3)
    op = Matrix(sp, (1, 8, 8))
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(op(x), op(x)) and torch.equal(op.A_adjoint(op(x)), op.A_adjoint(op(x)))
    assert op.val.numel() == op.val_t.numel() == sp.nnz and not hasattr(op, "matrix")
    y = torch.rand(5, 40, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(op.double().A_adjoint(y).square().sum(), y, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), y)  # double backward through the sparse product
    dense = torch.from_numpy(sp.toarray())
    torch.testing.assert_close(gg, (2 * dense @ dense.T).sum(0).expand(5, 40))


@pytest.mark.parametrize("make, error, message", [
    (lambda: Matrix(np.ones((3, 10)), (1, 3, 3)), ValueError, r"n = prod\(in_shape\) = 1\*3\*3 = 9, got \(3, 10\)"),
    (lambda: Matrix(scipy.sparse.eye(5, 8), (1, 3, 3)), ValueError, r"= 9, got \(5, 8\)"),
    (lambda: Matrix(np.ones((2, 3, 3)), (9,)), ValueError, r"must be 2-D \(m, n\), got shape \(2, 3, 3\)"),
    (lambda: Matrix(np.ones((2, 4)) * 1j, (4,)), TypeError, "real numbers, got dtype torch.complex128"),
    (lambda: Matrix(scipy.sparse.eye(2, 4) * 1j, (4,)), TypeError, "real numbers, got dtype complex128"),
    (lambda: Matrix(np.array([[1.0, np.nan]]), (2,)), ValueError, "finite, got 1 NaN or infinite"),
    (lambda: Matrix(scipy.sparse.csr_matrix(np.array([[np.inf, 1.0]])), (2,)), ValueError, "finite, got 1"),
    (lambda: Matrix(np.ones((2, 4)), (4, 0)), ValueError, r"in_shape must be a tuple of positive ints .*\(4, 0\)"),
    (lambda: Matrix("matrix", (4,)), TypeError, "tensor, an array or a scipy.sparse matrix, got str"),
    (lambda: Matrix(np.ones((2, 4)), (4,))(torch.ones(1, 5)), ValueError,
     r"Matrix: input image must have shape \(B, 4\), got \(1, 5\)"),
])
def test_matrix_bad_construction_and_inputs(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---------------------------------------------------------------- from_callable
def _pair(seed=0):
    W = torch.randn(6, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return W, (lambda x: x.flatten(1) @ W.to(x).T), (lambda y: (y @ W.to(y)).view(-1, 2, 2, 2))


def test_from_callable_checks_the_adjoint_silently_when_it_is_right():
    W, A, At = _pair()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op = from_callable(A, At, (2, 2, 2), (6,))
    assert op.adjoint_check_error < 1e-6
    assert from_callable(A, At, (2, 2, 2), (6,), dtype=torch.float64).adjoint_check_error < 1e-14


def test_from_callable_warns_when_the_adjoint_is_wrong():
    W, A, _ = _pair()
    wrong = lambda y: (y @ (W + 0.01).to(y)).view(-1, 2, 2, 2)  # noqa: E731
    with pytest.warns(UserWarning, match=r"A_adjoint is not the adjoint of A: relative error .* > 1e-04"):
        op = from_callable(A, wrong, (2, 2, 2), (6,))
    assert op.adjoint_check_error > 1e-4


@pytest.mark.parametrize("make, error, message", [
    (lambda A, At: from_callable("A", At, (2, 2, 2), (6,)), TypeError, "A must be callable"),
    (lambda A, At: from_callable(A, At, (2, 2), (6,)), ValueError,
     r"checking the adjoint on seeded random tensors x \(2, 2, 2\), y \(2, 6\) \(float32 on cpu\) "
     r"failed: RuntimeError"),
    (lambda A, At: from_callable(A, At, (2, 2, 2), (7,)), ValueError, r"A must return \(2, 7\), got \(2, 6\)"),
    (lambda A, At: from_callable(A, At, (2, 2, 2), (-6,)), ValueError, "out_shape must be a tuple of positive ints"),
    (lambda A, At: from_callable(A, At, (2, 2, 2), (6,))(torch.ones(3, 8)), ValueError,
     r"CallableOperator: input image must have shape \(B, 2, 2, 2\), got \(3, 8\)"),
])
def test_from_callable_errors(make, error, message):
    _, A, At = _pair()
    with pytest.raises(error, match=message):
        make(A, At)


# ---------------------------------------------------------------- every new operator solves
def _tiny_prior():
    net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
    torch.manual_seed(0)  # the network's initial weights only; the solve itself is seeded
    return priors.wrap(net, (8,), output_range=(0, 1))


SOLVE_OPERATORS = {
    "matrix_dense": lambda: Matrix(torch.randn(24, 64, generator=torch.Generator().manual_seed(0)), (1, 8, 8)),
    "matrix_sparse": lambda: Matrix(scipy.sparse.random(24, 64, density=0.3, format="csr", random_state=0), (1, 8, 8)),
    "from_callable": lambda: (lambda W: from_callable(lambda x: x.flatten(1) @ W.to(x).T,
                                                      lambda y: (y @ W.to(y)).view(-1, 1, 8, 8), (1, 8, 8), (24,)))(
        torch.randn(24, 64, generator=torch.Generator().manual_seed(1))),
    "partial_fourier": lambda: PartialFourier((1, 8, 8), masks.fourier_variable_density((8, 8), 0.3, seed=0)),
    "single_pixel": lambda: SinglePixel(20, (1, 8, 8)),
}


@pytest.mark.parametrize("name", sorted(SOLVE_OPERATORS))
def test_solve_accepts_the_operator(name):
    G, op = _tiny_prior(), SOLVE_OPERATORS[name]()
    x = G(G.sample_latents(2, seed=3)).detach()
    res = restore.solve(op(x), op, G, method="latent", steps=15, seed=0, progress=False, n_init=8, n_starts=1,
                        restarts=0, refine_steps=3, lm_starts=0)
    assert res.image.shape == x.shape
    assert torch.all(res.loss < res.history[0])
