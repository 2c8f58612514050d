"""Properties of every degradation operator, parametrized over one dict of factories."""
import json
import time
from typing import Callable, NamedTuple, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from operators import (CompressedSensing, Downsample, GaussianNoise, Grayscale, LinearOperator, Mask, Matrix,
                       PartialFourier, PoissonNoise, SinglePixel, from_callable, from_deepinv, from_spec, masks)
from operators.compressed_sensing import fwht

BATCH = 2  # every case is tested on a batch of two (the per-sample mask needs exactly two)


class Case(NamedTuple):
    make: Callable[[int], LinearOperator]  # seed -> operator
    shape: Tuple[int, int, int]            # per-sample input shape
    random: bool                           # does the seed change the operator?
    spec: bool = True                      # does spec() serialize it (else: a clear NotImplementedError)?


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _sparse(seed):
    import scipy.sparse
    return scipy.sparse.random(15, 25, density=0.3, format="csr", random_state=seed)


def _callable(seed):
    W = torch.randn(12, 18, generator=_gen(seed), dtype=torch.float64)
    return from_callable(lambda x: x.flatten(1) @ W.to(x).T, lambda y: (y @ W.to(y)).view(-1, 2, 3, 3),
                         (2, 3, 3), (12,))


def _deepinv(seed):
    dinv = pytest.importorskip("deepinv")  # the optional extra [deepinv]: skipped without it
    return from_deepinv(dinv.physics.CompressedSensing(m=10, img_size=(1, 4, 4), rng=_gen(seed)))


CASES = {
    "mask": Case(lambda s: Mask(masks.random_pixels((8, 8), keep=0.5, seed=s)), (3, 8, 8), True),
    "mask_per_sample": Case(lambda s: Mask(masks.free_form((BATCH, 1, 8, 8), seed=s, max_width=3)), (3, 8, 8), True),
    "downsample_bicubic": Case(lambda s: Downsample(2), (3, 8, 8), False),
    "downsample_box": Case(lambda s: Downsample(4, "box"), (2, 8, 8), False),
    "downsample_gaussian": Case(lambda s: Downsample(2, "gaussian"), (1, 8, 6), False),
    "grayscale": Case(lambda s: Grayscale(), (3, 4, 4), False),
    "cs_gaussian": Case(lambda s: CompressedSensing(30, (3, 4, 4), "gaussian", seed=s), (3, 4, 4), True),
    "cs_srht": Case(lambda s: CompressedSensing(20, (1, 5, 5), "srht", seed=s), (1, 5, 5), True),
    "gray_then_mask": Case(lambda s: Mask(masks.random_boxes((8, 8), 2, 3, seed=s)) @ Grayscale(), (3, 8, 8), True),
    "down_gray_srht": Case(lambda s: CompressedSensing(10, (1, 4, 4), "srht", seed=s) @ Grayscale() @ Downsample(2),
                           (3, 8, 8), True),
    "matrix_dense": Case(lambda s: Matrix(torch.randn(20, 48, generator=_gen(s)), (3, 4, 4)), (3, 4, 4), True),
    "matrix_sparse": Case(lambda s: Matrix(_sparse(s), (1, 5, 5)), (1, 5, 5), True),
    "matrix_sparse_tall": Case(lambda s: Matrix(_sparse(s).T.tocoo(), (1, 3, 5)), (1, 3, 5), True),
    "from_callable": Case(_callable, (2, 3, 3), True, spec=False),
    "fourier_random": Case(lambda s: PartialFourier((2, 6, 5), masks.fourier_random((6, 5), 0.4, seed=s)),
                           (2, 6, 5), True),
    "fourier_lines": Case(lambda s: PartialFourier((1, 8, 8), masks.fourier_lines((8, 8), 0.5, 0.25, seed=s)),
                          (1, 8, 8), True),
    "fourier_radial": Case(lambda s: PartialFourier((1, 7, 8), masks.fourier_radial((7, 8), 2, seed=s)),
                           (1, 7, 8), True),
    "fourier_variable_density": Case(lambda s: PartialFourier((1, 8, 8), masks.fourier_variable_density(
        (8, 8), 0.3, seed=s)), (1, 8, 8), True),
    "single_pixel_sequency": Case(lambda s: SinglePixel(20, (2, 8, 8)), (2, 8, 8), False),
    "single_pixel_random_padded": Case(lambda s: SinglePixel(15, (1, 5, 6), "random", seed=s), (1, 5, 6), True),
    "from_deepinv": Case(_deepinv, (1, 4, 4), True, spec=False),
}
NAMES = list(CASES)
TOL = {torch.float32: 1e-4, torch.float64: 1e-10}


def _build(name, dtype=torch.float64, device="cpu", seed=0):
    case = CASES[name]
    op = case.make(seed).to(device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(seed + 100)
    x = torch.rand((BATCH,) + case.shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    return op, x


def _random_like(t, seed=7):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t)


def _dense(op, x):
    """The operator as a matrix over the whole batch, ``(B*m, B*n)``."""
    jac = torch.autograd.functional.jacobian(op.A, x)
    return jac.reshape(op(x).numel(), x.numel())


# ---------------------------------------------------------------- linear-algebra properties
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_adjoint_error(name, dtype, device):
    op, x = _build(name, dtype, device)
    assert op.adjoint_error(x, _random_like(op(x))) < TOL[dtype]
    assert op.adjoint_error(input_shape=CASES[name].shape) < TOL[dtype]  # seeded random probes


@pytest.mark.parametrize("name", NAMES)
def test_adjoint_equals_autograd_vjp(name):
    op, x = _build(name)
    x.requires_grad_(True)
    y = _random_like(op(x))
    (vjp,) = torch.autograd.grad(op(x), x, y)
    torch.testing.assert_close(op.A_adjoint(y), vjp, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_forward_mode_jvp_under_vmap_equals_forward(name):
    """The Levenberg-Marquardt polish differentiates ``A`` with ``torch.func.jvp`` under ``vmap``."""
    op, x = _build(name)
    tangents = torch.stack([_random_like(x, seed) for seed in range(3)])
    columns = torch.func.vmap(lambda v: torch.func.jvp(op.A, (x,), (v,))[1])(tangents)
    torch.testing.assert_close(columns, torch.stack([op(v) for v in tangents]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck(name):
    op, x = _build(name)
    assert torch.autograd.gradcheck(op, (x.requires_grad_(True),), fast_mode=True)
    y = _random_like(op(x)).requires_grad_(True)
    assert torch.autograd.gradcheck(op.A_adjoint, (y,), fast_mode=True)


@pytest.mark.parametrize("name", NAMES)
def test_pinv_is_a_right_inverse_on_the_range(name, device):
    op, x = _build(name, device=device)
    y = op(x)
    torch.testing.assert_close(op(op.pinv(y, tol=1e-12, max_iter=500)), y, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_pinv_matches_dense_pseudo_inverse(name):
    op, x = _build(name)
    y = _random_like(op(x))  # generally not in the range of A
    expected = torch.linalg.pinv(_dense(op, x)) @ y.flatten()
    torch.testing.assert_close(op.pinv(y, tol=1e-12, max_iter=500).flatten(), expected, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_norm_matches_largest_singular_value(name):
    op, x = _build(name)
    sigma = torch.linalg.svdvals(_dense(op, x))[0].item()
    assert op.norm(input_shape=CASES[name].shape) == pytest.approx(sigma, rel=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_normal_is_adjoint_of_forward(name):
    op, x = _build(name)
    torch.testing.assert_close(op.normal(x), op.A_adjoint(op.A(x)))


# ---------------------------------------------------------------- seeds, dtypes, devices, specs
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_operator_different_seed_differs(name):
    (a, x), (b, _), (c, _) = _build(name, seed=1), _build(name, seed=1), _build(name, seed=2)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert torch.equal(a(x), c(x)) != CASES[name].random


def test_unseeded_operators_record_their_seed_and_differ():
    a, b = (CompressedSensing(20, (1, 5, 5), "srht") for _ in range(2))
    assert isinstance(a.seed, int) and a.seed != b.seed
    x = torch.rand(1, 1, 5, 5)
    assert not torch.equal(a(x), b(x))
    torch.testing.assert_close(CompressedSensing(20, (1, 5, 5), "srht", seed=a.seed)(x), a(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_to_dtype_keeps_everything_consistent(name):
    op32, x = _build(name, torch.float32)
    op64 = CASES[name].make(0).double()
    assert all(b.dtype == torch.float64 for b in op64.buffers() if b.is_floating_point())
    y64 = op64(x.double())
    assert y64.dtype == torch.float64 and op64.A_adjoint(y64).dtype == torch.float64
    assert op64.pinv(y64).dtype == torch.float64
    torch.testing.assert_close(op32(x), y64.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(op32.to(torch.float64)(x.double()), y64)


@pytest.mark.parametrize("name", NAMES)
def test_device_matches_cpu(name, device):
    op, x = _build(name)
    moved, _ = _build(name, device=device)
    torch.testing.assert_close(moved(x.to(device)).cpu(), op(x))
    assert all(b.device.type == torch.device(device).type for b in moved.buffers())


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trips_through_json(name):
    op, x = _build(name)
    if not CASES[name].spec:
        with pytest.raises(NotImplementedError, match="cannot be serialized"):
            op.spec()
        return
    text = json.dumps(op.spec(), default=lambda a: a.tolist())
    rebuilt = from_spec(json.loads(text)).double()
    torch.testing.assert_close(rebuilt(x), op(x), rtol=0, atol=0)
    assert rebuilt.input_shape == op.input_shape and rebuilt.out_dims == op.out_dims


@pytest.mark.parametrize("name", NAMES)
def test_degrade_applies_noise_to_the_observation(name):
    op, x = _build(name)
    y = op.degrade(x, GaussianNoise(0.1, seed=3))
    torch.testing.assert_close(y, GaussianNoise(0.1, seed=3)(op(x)))
    torch.testing.assert_close(op.degrade(x), op(x))


# ---------------------------------------------------------------- bad inputs, per operator
@pytest.mark.parametrize("name", NAMES)
def test_non_float_tensors_raise_type_error(name):
    op, x = _build(name)
    with pytest.raises(TypeError, match="floating-point.*got dtype torch.int64"):
        op((x * 10).long())
    with pytest.raises(TypeError, match="floating-point.*got dtype torch.int32"):
        op.adjoint(op(x).int())
    with pytest.raises(TypeError, match="must be a torch.Tensor, got ndarray"):
        op(x.numpy())


@pytest.mark.parametrize("name", NAMES)
def test_nan_observation_raises_value_error(name):
    op, x = _build(name)
    y = op(x).clone()
    y.view(-1)[0] = float("nan")
    for call in (op.adjoint, op.pinv, op.check_observation):
        with pytest.raises(ValueError, match="observation must be finite, got 1 NaN"):
            call(y)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_number_of_dimensions_raises_value_error(name):
    op, x = _build(name)
    with pytest.raises(ValueError, match=r"input image must have shape \(B, .*got \(3, 8\)"):
        op(x.new_zeros(3, 8))
    with pytest.raises(ValueError, match="observation must have shape"):
        op.adjoint(op(x)[..., None])


@pytest.mark.parametrize("make, bad, message", [
    (lambda: Grayscale(), (2, 1, 4, 4), r"Grayscale: input image must have shape \(B, 3, H, W\), got \(2, 1, 4, 4\)"),
    (lambda: Mask(torch.ones(3, 8, 8)), (2, 1, 8, 8), r"Mask: .*\(B, 3, 8, 8\), got \(2, 1, 8, 8\) \(dimension 1 is 1"),
    (lambda: Mask(torch.ones(8, 8)), (2, 3, 9, 8), r"Mask: .*\(B, C, 8, 8\), got \(2, 3, 9, 8\) \(dimension 2 is 9"),
    (lambda: Mask(torch.ones(2, 1, 8, 8)), (3, 1, 8, 8), "must have batch size 2 .*got 3"),
    (lambda: CompressedSensing(5, (3, 4, 4), seed=0), (2, 1, 4, 4), r"\(B, 3, 4, 4\), got \(2, 1, 4, 4\)"),
    (lambda: CompressedSensing(5, (3, 4, 4), seed=0), (2, 3, 4, 5), r"\(B, 3, 4, 4\), got \(2, 3, 4, 5\)"),
    (lambda: Downsample(4), (1, 3, 30, 32), r"Downsample\(factor=4\) needs height and width divisible by 4, got .*H=30"),
    (lambda: Downsample(2, "box"), (1, 3, 8, 7), "divisible by 2, got .*W=7"),
])
def test_wrong_channels_or_size_raise_value_error(make, bad, message):
    with pytest.raises(ValueError, match=message):
        make()(torch.zeros(bad))


def test_wrong_observation_shape_names_expected_and_received():
    with pytest.raises(ValueError, match=r"observation must have shape \(B, 5\), got \(1, 6\)"):
        CompressedSensing(5, (1, 4, 4), seed=0).adjoint(torch.zeros(1, 6))
    with pytest.raises(ValueError, match=r"observation must have shape \(B, 1, H, W\), got \(1, 3, 4, 4\)"):
        Grayscale().pinv(torch.zeros(1, 3, 4, 4))


@pytest.mark.parametrize("m, error, message", [
    (49, ValueError, r"m <= n = C\*H\*W = 3\*4\*4 = 48, got m=49"),
    (0, ValueError, "m >= 1 measurements, got m=0"),
    (-3, ValueError, "m >= 1 measurements, got m=-3"),
    (2.5, TypeError, "m must be an int, got float"),
])
@pytest.mark.parametrize("kind", ["gaussian", "srht"])
def test_bad_measurement_count(m, error, message, kind):
    with pytest.raises(error, match=message):
        CompressedSensing(m, (3, 4, 4), kind=kind, seed=0)


@pytest.mark.parametrize("make, error, message", [
    (lambda: CompressedSensing(4, (3, 4, 4), kind="dct"), ValueError, r"kind must be one of \('gaussian', 'srht'\), got 'dct'"),
    (lambda: CompressedSensing(4, (4, 4)), ValueError, r"shape must be \(C, H, W\).*got \(4, 4\)"),
    (lambda: CompressedSensing(4, (3, 4, 4), seed=-1), ValueError, "non-negative int, got -1"),
    (lambda: Downsample(0), ValueError, "factor must be >= 1, got 0"),
    (lambda: Downsample(2.0), TypeError, "factor must be an int, got float"),
    (lambda: Downsample(2, "lanczos"), ValueError, r"kernel must be one of \('bicubic', 'box', 'gaussian'\), got 'lanczos'"),
    (lambda: Downsample(2, "bicubic", sigma=1.0), ValueError, "sigma applies only to kernel='gaussian'"),
    (lambda: Mask(torch.ones(1, 1, 1, 8, 8)), ValueError, r"mask must have shape \(H, W\), .*got \(1, 1, 1, 8, 8\)"),
    (lambda: Mask(torch.ones(8)), ValueError, r"mask must have shape .*got \(8,\)"),
    (lambda: Mask(torch.full((4, 4), 0.5)), ValueError, "only 0 .* and 1 .*got 16 other values such as 0.5"),
    (lambda: Mask(torch.tensor([[0.0, float("nan")]])), ValueError, "got 1 other values such as nan"),
    (lambda: Mask(np.array([[2, 1]])), ValueError, "got 1 other values such as 2"),
    (lambda: Grayscale() @ "not an operator", TypeError, "unsupported operand"),
    (lambda: CompressedSensing(4, (3, 4, 4), seed=0) @ Grayscale(), ValueError,
     r"cannot compose: Grayscale outputs \(B, 1, H, W\) but CompressedSensing expects \(B, 3, 4, 4\)"),
    (lambda: Downsample(2).norm(), ValueError, r"accepts inputs \(B, C, H, W\) of any size; pass input_shape"),
    (lambda: from_spec({"type": "Blur"}), ValueError, "unknown operator type 'Blur'"),
])
def test_bad_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---------------------------------------------------------------- operator-specific behaviour
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bicubic_matches_antialiased_bicubic_resize(factor):
    x = torch.rand(1, 3, 12 * factor, 8 * factor, dtype=torch.float64)
    expected = F.interpolate(x, scale_factor=1 / factor, mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(Downsample(factor)(x), expected, rtol=0, atol=1e-7)


def test_bicubic_matches_pil():
    from PIL import Image
    x = torch.rand(1, 1, 64, 48)
    img = Image.fromarray(x[0, 0].numpy(), mode="F").resize((12, 16), Image.BICUBIC)
    torch.testing.assert_close(Downsample(4)(x)[0, 0], torch.from_numpy(np.array(img)), rtol=0, atol=1e-5)


def test_box_is_block_mean_and_its_pinv_replicates():
    x = torch.rand(2, 3, 12, 8, dtype=torch.float64)
    op = Downsample(4, "box")
    torch.testing.assert_close(op(x), F.avg_pool2d(x, 4))
    y = op(x)
    torch.testing.assert_close(op.pinv(y), F.interpolate(y, scale_factor=4, mode="nearest"))


@settings(max_examples=12, deadline=None)
@given(factor=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5), kernel=st.sampled_from(["bicubic", "box", "gaussian"]))
def test_downsample_any_size(factor, h, w, kernel):
    op = Downsample(factor, kernel)
    x = torch.rand(1, 2, h * factor, w * factor, dtype=torch.float64)
    assert op(x).shape == (1, 2, h, w)
    assert op.adjoint_error(x) < 1e-10
    torch.testing.assert_close(op(torch.ones_like(x)), torch.ones(1, 2, h, w, dtype=torch.float64))


@pytest.mark.parametrize("bits", range(8))
def test_fwht_is_the_orthonormal_hadamard_transform(bits):
    from scipy.linalg import hadamard
    n = 1 << bits
    x = torch.randn(3, n, dtype=torch.float64)
    expected = x @ torch.from_numpy(hadamard(n).astype(np.float64)) / n ** 0.5
    torch.testing.assert_close(fwht(x), expected)
    torch.testing.assert_close(fwht(fwht(x)), x)


@settings(max_examples=12, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9), frac=st.floats(0.01, 1.0),
       seed=st.integers(0, 2 ** 32), kind=st.sampled_from(["gaussian", "srht"]))
def test_compressed_sensing_any_shape(c, h, w, frac, seed, kind):
    n = c * h * w
    op = CompressedSensing(max(1, int(frac * n)), (c, h, w), kind=kind, seed=seed).double()
    x = torch.rand(2, c, h, w, dtype=torch.float64)
    assert op(x).shape == (2, op.m)
    assert op.adjoint_error(x) < 1e-10
    torch.testing.assert_close(op(op.pinv(op(x), tol=1e-12, max_iter=500)), op(x))


def test_srht_has_orthogonal_rows_when_n_is_a_power_of_two():
    op = CompressedSensing(100, (1, 16, 16), kind="srht", seed=0).double()
    eye = torch.eye(100, dtype=torch.float64)
    gram = op.A(op.A_adjoint(eye))  # A A^T
    torch.testing.assert_close(gram, eye * 256 / 100)
    assert sum(b.numel() for b in op.buffers()) == 256 + 100  # signs and rows only, never a matrix


def test_gaussian_matrix_scale_and_build_time():
    start = time.perf_counter()
    op = CompressedSensing(1000, (3, 64, 64), kind="gaussian", seed=0)
    assert time.perf_counter() - start < 2.0
    assert op.matrix.shape == (1000, 3 * 64 * 64)
    assert float(op.matrix.std()) == pytest.approx(1000 ** -0.5, rel=0.01)


def test_composition_order_and_adjoint():
    down, gray = Downsample(2).double(), Grayscale().double()
    op = gray @ down
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    y = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(op(x), gray(down(x)))
    torch.testing.assert_close(op.A_adjoint(y), down.A_adjoint(gray.A_adjoint(y)))
    assert len((Mask(torch.ones(4, 4)) @ op).ops) == 3 and op.out_dims == (1, None, None)
    cs = CompressedSensing(5, (1, 4, 4), seed=0) @ op
    assert cs.input_shape is None and cs.out_dims == (5,)


def test_input_and_output_shapes_are_documented_on_the_operator():
    assert Grayscale().in_dims == (3, None, None) and Grayscale().input_shape is None
    cs = CompressedSensing(5, (3, 4, 4), seed=0)
    assert cs.input_shape == (3, 4, 4) and cs.output_shape == (5,)
    assert Downsample(4).output_dims((3, 64, 32)) == (3, 16, 8)
    assert Mask(torch.ones(3, 8, 8)).input_shape == (3, 8, 8)
    assert Mask(torch.ones(8, 8)).input_shape is None and Mask(torch.ones(8, 8)).norm() == pytest.approx(1.0)


# ---------------------------------------------------------------- noise models
@pytest.mark.parametrize("noise", [GaussianNoise(0.1, seed=0), PoissonNoise(0.01, seed=0)])
def test_noise_is_seeded_and_reproducible(noise):
    y = torch.rand(2, 3, 32, 32)
    first = noise(y)
    assert first.shape == y.shape and first.dtype == y.dtype
    assert not torch.equal(noise(y), first)  # the stream moves on
    noise.reset()
    torch.testing.assert_close(noise(y), first, rtol=0, atol=0)
    twin = from_spec(noise.spec())
    torch.testing.assert_close(twin(y), first, rtol=0, atol=0)
    other = from_spec({**noise.spec(), "seed": 1})
    assert not torch.equal(other(y), first)


def test_noise_statistics():
    y = torch.full((1, 1, 200, 200), 0.5, dtype=torch.float64)
    assert float((GaussianNoise(0.1, seed=0)(y) - y).std()) == pytest.approx(0.1, rel=0.02)
    noisy = PoissonNoise(0.01, seed=0)(y)
    assert float(noisy.mean()) == pytest.approx(0.5, rel=0.01)
    assert float(noisy.var()) == pytest.approx(0.01 * 0.5, rel=0.05)
    assert isinstance(GaussianNoise(0.1).seed, int) and GaussianNoise(0.1).seed != GaussianNoise(0.1).seed


@pytest.mark.parametrize("call, error, message", [
    (lambda: GaussianNoise(-0.1), ValueError, r"sigma must be finite and >= 0, got -0.1"),
    (lambda: PoissonNoise(0), ValueError, r"gain must be finite and > 0, got 0.0"),
    (lambda: GaussianNoise("big"), TypeError, "sigma must be a number, got str"),
    (lambda: PoissonNoise(0.1, seed=0)(torch.tensor([[-0.5, 0.2]])), ValueError, "non-negative observation .*minimum -0.5"),
    (lambda: GaussianNoise(0.1, seed=0)(torch.ones(2, 3, dtype=torch.int64)), TypeError, "floating-point.*torch.int64"),
    (lambda: GaussianNoise(0.1, seed=0)(torch.tensor([float("nan")])), ValueError, "finite, got 1 NaN"),
])
def test_noise_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("module", ["operators", "operators.base", "operators.mask", "operators.masks",
                                    "operators.resample", "operators.color", "operators.compressed_sensing",
                                    "operators.noise", "operators.spec", "operators.matrix",
                                    "operators.matrix_free", "operators.fourier", "operators.single_pixel",
                                    "operators.deepinv_physics"])
def test_docstring_examples_run(module):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
