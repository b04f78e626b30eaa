"""tinynet.accel's CPU twins: every Numba kernel computes what its NumPy reference computes
(exactly where the maths is a copy, a max or a sum in the same order; to float rounding
where the float32 tanh approximation enters), and the dispatch picks the twins it should."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tinynet.functional.conv as conv
from tinynet import dispatch
from tinynet.functional.conv import col2im, conv2d_backward, conv2d_forward, im2col
from tinynet.functional.lstm import lstm_cell_backward, lstm_cell_forward
from tinynet.functional.pool import maxpool2d_backward, maxpool2d_forward
from tinynet.layers import Conv2D
from tinynet.optim import Adam

accel = pytest.importorskip("tinynet.accel", reason="the accelerated twins (tinynet.accel) are absent")
cpu_conv = pytest.importorskip("tinynet.accel.cpu.conv", reason="Numba is not usable")
numba_kernels = pytest.importorskip("tinynet.accel.cpu.numba_kernels", reason="Numba is not usable")
pytestmark = pytest.mark.skipif(not dispatch.ENABLED, reason="TINYNET_NUMPY=1 switches the twins off")

DTYPES = (np.float32, np.float64)
# the float32 tanh approximation is a few ulp from NumPy's; float64 uses the C library's tanh
CELL_RTOL = {np.float32: 2e-6, np.float64: 1e-14}

# (x shape, kh, kw, stride, pad): odd, non-square images and kernels, with and without padding
CONV_CASES = [
    ((2, 3, 7, 5), 3, 3, 1, 1),
    ((3, 2, 9, 6), 5, 5, 1, 2),
    ((2, 3, 8, 7), 3, 2, 2, 1),
    ((1, 2, 6, 9), 5, 3, 2, 2),
    ((2, 1, 5, 4), 2, 3, 1, 0),
]
POOL_CASES = [((2, 3, 7, 5), 2, 2), ((2, 2, 7, 6), 3, 2), ((1, 2, 5, 6), 2, 1)]


def both_paths(function, *args):
    """(function(*args) through the twins, the same through the plain reference)."""
    with dispatch.reference_only():
        reference = function(*args)
    assert dispatch.ENABLED
    return function(*args), reference


def normwise_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def test_twins_serve_float_numpy_arrays_only():
    assert accel.numpy_float(np.zeros(3, np.float32), np.zeros(2), 3, None)
    assert not accel.numpy_float(np.zeros(3, np.longdouble))  # the gradient checks' twins
    assert not accel.numpy_float(np.zeros(3, np.int16))
    assert not accel.numpy_float([1.0, 2.0])
    assert not accel.numpy_float(2.0)
    assert accel.numpy_float({"W": np.zeros(2)}) and not accel.numpy_float({"W": np.zeros(2, np.float16)})
    assert not accel.cupy_float(np.zeros(3, np.float32))


def test_every_twin_names_an_accelerated_reference_and_loads():
    """TWINS keys are the names of @accelerated functions; every CPU twin imports and is
    callable (the GPU ones import CuPy: tests/tinynet/test_gpu_kernels.py)."""
    import tinynet.accel.decoder_buffered
    import tinynet.functional.decoder
    import tinynet.functional.dropout
    import tinynet.functional.losses
    import tinynet.functional.matmul
    import tinynet.optim.adam
    import tinynet.optim.clip
    import tinynet.optim.update

    modules = [conv, tinynet.functional.decoder, tinynet.functional.dropout, tinynet.functional.losses,
               tinynet.functional.matmul, tinynet.optim.adam, tinynet.optim.clip, tinynet.optim.update,
               tinynet.accel.decoder_buffered, dispatch, sys.modules["tinynet.functional.lstm"],
               sys.modules["tinynet.functional.pool"]]
    decorated = {f.reference_name for m in modules for f in vars(m).values() if hasattr(f, "reference_name")}
    assert set(accel.TWINS) == decorated
    for twins in accel.TWINS.values():
        for accepts, spec in twins:
            assert callable(accepts)
            if not spec.startswith("gpu."):
                assert callable(dispatch.load_twin(spec))


def test_every_cuda_source_the_gpu_modules_read_is_there():
    """The CUDA C of tinynet.accel.gpu lives in cuda/*.cu(h), read at import (without CuPy
    the modules cannot be imported here, so their cuda_source calls are read from the code)."""
    import ast
    from pathlib import Path

    from tinynet.accel.gpu import cuda_source

    gpu = Path(accel.__file__).parent / "gpu"
    names = {node.args[0].value for path in gpu.glob("*.py") for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "cuda_source"}
    assert names == {path.name for path in (gpu / "cuda").iterdir()}
    for name in names:
        assert "__device__" in cuda_source(name) or "__global__" in cuda_source(name)


def test_side_work_of_numpy_arrays_runs_at_once():
    """dispatch.side_stream on the CPU: run() runs at once (the decoder's weight gradients then
    follow its sweep in order); join() has nothing to wait for."""
    order = []
    side = dispatch.side_stream(np.zeros(2, np.float32))
    assert isinstance(side, dispatch.RunAtOnce)
    side.run(lambda: order.append("side"))
    order.append("caller")
    side.join()
    assert order == ["side", "caller"]


def test_reference_only_runs_the_plain_body():
    x = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    with dispatch.reference_only():
        assert not dispatch.ENABLED
        np.testing.assert_array_equal(im2col(x, 2, 2, 1, 0), im2col.reference(x, 2, 2, 1, 0))
    assert dispatch.ENABLED


@pytest.mark.parametrize("value, enabled", [("1", False), ("", True)])
def test_tinynet_numpy_environment_variable(value, enabled):
    env = {**os.environ, "TINYNET_NUMPY": value}
    code = "import tinynet.dispatch as d; print(d.ENABLED)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(enabled)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kh, kw, stride, pad", CONV_CASES)
def test_eq05_im2col_col2im_kernels_match_numpy(rng, dtype, shape, kh, kw, stride, pad):
    x = rng.standard_normal(shape).astype(dtype)
    cols, cols_twin = both_paths(im2col, x, kh, kw, stride, pad)
    assert cols.dtype == dtype and np.array_equal(cols, cols_twin)
    dcols = rng.standard_normal(cols.shape).astype(dtype)
    dx, dx_twin = both_paths(col2im, dcols, shape, kh, kw, stride, pad)
    assert dx.dtype == dtype and np.array_equal(dx, dx_twin)  # same sums in the same order


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (1, 4, 2, 9)])
def test_eq05_layout_kernels_match_numpy(rng, dtype, shape):
    """images (N, C, H, W) <-> rows (C, N*H*W) around the chunked convolutions' products:
    copies, so exact."""
    x = rng.standard_normal(shape).astype(dtype)
    rows = numba_kernels.images_to_rows(x)
    assert rows.dtype == dtype and np.array_equal(rows, conv.images_to_rows(x))
    images = np.empty_like(x)
    numba_kernels.rows_into_images(rows, images)
    assert np.array_equal(images, x) and np.array_equal(conv.rows_to_images(rows, shape[0]).reshape(shape), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_eq06_maxpool_kernels_match_numpy(rng, dtype, shape, size, stride):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = x.flat[1]  # ties too: the first maximum in row-major order wins in both
    (y, cache), (y_twin, cache_twin) = both_paths(maxpool2d_forward, x, size, stride)
    assert np.array_equal(y, y_twin) and np.array_equal(cache[1], cache_twin[1])
    dy = rng.standard_normal(y.shape).astype(dtype)
    (dx, _), (dx_twin, _) = both_paths(maxpool2d_backward, dy, cache)
    assert dx.dtype == dtype
    if stride >= size:
        assert np.array_equal(dx, dx_twin)
    else:  # overlapping windows: an input's several shares are summed in another order
        np.testing.assert_allclose(dx, dx_twin, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("literal_eq13", [False, True])
def test_eq08_eq13_lstm_cell_kernels_match_numpy(rng, dtype, literal_eq13):
    N, H = 5, 7
    a = (3 * rng.standard_normal((N, 4 * H))).astype(dtype)  # into the saturated tails too
    c_prev, dh, dc = rng.standard_normal((3, N, H)).astype(dtype)
    a_before = a.copy()
    (h, c, cache), (h_twin, c_twin, cache_twin) = both_paths(lstm_cell_forward, a, c_prev, literal_eq13)
    assert np.array_equal(a, a_before)  # neither overwrites its input
    rtol = CELL_RTOL[dtype]
    for ours, twin in [(h, h_twin), (c, c_twin), (cache[0], cache_twin[0]), (cache[2], cache_twin[2])]:
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, twin, rtol=rtol, atol=rtol)
    (da, dc_prev), (da_twin, dc_prev_twin) = both_paths(lstm_cell_backward, dh, dc, cache_twin)
    np.testing.assert_allclose(da, da_twin, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(dc_prev, dc_prev_twin, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_cell_backward_kernel_zeroes_the_negligible_gradients_the_reference_does(rng, dtype):
    """Gates saturated so deep that their slopes are below the flush's bound, gradients of
    every size down to subnormal: the kernel leaves 0 exactly where the reference does."""
    from tinynet.negligible import negligible_below

    N, H = 6, 9
    a = (rng.choice([-1.0, 1.0], size=(N, 4 * H)) * rng.uniform(0, 120, size=(N, 4 * H))).astype(dtype)
    c_prev = rng.standard_normal((N, H)).astype(dtype)
    exponents = rng.uniform(np.log2(np.finfo(dtype).smallest_subnormal), 0, size=(2, N, H))
    dh, dc = (np.exp2(exponents) * rng.choice([-1.0, 1.0], size=exponents.shape)).astype(dtype)
    with dispatch.reference_only():
        cache = lstm_cell_forward(a, c_prev, False)[2]
    (da, dc_prev), (da_twin, dc_prev_twin) = both_paths(lstm_cell_backward, dh, dc, cache)
    bound = negligible_below(dtype)
    for kernels, reference in ((da, da_twin), (dc_prev, dc_prev_twin)):
        for result in (kernels, reference):
            assert (result == 0).any() and not ((result != 0) & (np.abs(result) < bound)).any()
        np.testing.assert_array_equal(kernels == 0, reference == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_kernel_matches_numpy(rng, dtype):
    params = {"W": rng.standard_normal((3, 5)).astype(dtype), "b": rng.standard_normal(7).astype(dtype)}
    grads = [{k: rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()} for _ in range(3)]

    def three_steps():
        optimizer, trained = Adam(lr=0.01), {k: p.copy() for k, p in params.items()}
        for g in grads:
            optimizer.step(trained, g)
        return trained

    ours, twin = both_paths(three_steps)
    for key in params:
        assert ours[key].dtype == dtype and np.array_equal(ours[key], twin[key])


@pytest.mark.parametrize("dtype", DTYPES)
def test_flush_negligible_kernel_matches_numpy(rng, dtype):
    """Magnitudes spread over every exponent of the dtype, subnormals and zeros included."""
    from tinynet.negligible import flush_negligible

    info = np.finfo(dtype)
    exponents = rng.uniform(np.log2(info.smallest_subnormal), np.log2(info.max) - 1, size=(40, 25))
    values = (rng.choice([-1.0, 1.0], size=exponents.shape) * np.exp2(exponents)).astype(dtype)
    values[0, :5] = 0
    ours, twin = both_paths(lambda: flush_negligible(a := values.copy()) or a)
    assert (ours == 0).sum() > 5 and np.array_equal(ours, twin)


def test_eq05_conv_without_input_gradient_keeps_weight_gradients(rng):
    x = rng.standard_normal((2, 1, 9, 7))
    layer = Conv2D(1, 4, 3, rng, dtype=np.float64, input_grad=False)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    assert layer.backward(dy) is None
    _, grads = conv2d_backward(dy, conv2d_forward(x, layer.params["W"], layer.params["b"], 1, 1)[1])
    for key in grads:
        np.testing.assert_array_equal(layer.grads[key], grads[key])


@pytest.mark.parametrize("chunk_bytes", [1, 40000])
def test_eq05_conv_batch_chunks_match_one_chunk(rng, monkeypatch, chunk_bytes):
    """Chunked im2col / GEMM / col2im (one image, or a few, per chunk) = the whole batch at once."""
    x = rng.standard_normal((5, 3, 9, 7))
    W, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    W_t, b_t = rng.standard_normal((3, 2, 5, 5)), rng.standard_normal(2)

    def passes():
        y, cache = conv2d_forward(x, W, b, 1, 1)
        dx, grads = conv2d_backward(np.sin(y), cache)
        y_t, cache_t = conv.conv_transpose2d_forward(x, W_t, b_t, 2, 2, 1)
        dx_t, grads_t = conv.conv_transpose2d_backward(np.cos(y_t), cache_t)
        return [y, dx, *grads.values(), y_t, dx_t, *grads_t.values()]

    monkeypatch.setattr(cpu_conv, "CPU_CHUNK_BYTES", chunk_bytes)
    chunked = passes()
    monkeypatch.setattr(cpu_conv, "CPU_CHUNK_BYTES", 2**40)
    for ours, whole in zip(chunked, passes()):
        np.testing.assert_allclose(ours, whole, rtol=1e-13, atol=1e-13)
    with dispatch.reference_only():
        for ours, reference in zip(chunked, passes()):
            np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-13)
