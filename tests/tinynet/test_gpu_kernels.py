"""tinynet.accel.gpu: every fused CuPy kernel computes what its NumPy reference
computes (to the rounding of the device's tanh and sqrt), and a step replayed from a
CUDA graph computes what the same step called eagerly computes. All need CuPy and a device."""

import numpy as np
import pytest
from test_kernels import CONV_CASES, POOL_CASES

from tinynet import dispatch
from tinynet.backend import gpu_unavailable_reason, to_numpy
from tinynet.functional.conv import col2im, im2col
from tinynet.functional.lstm import lstm_cell_backward, lstm_cell_forward
from tinynet.functional.pool import maxpool2d_backward, maxpool2d_forward
from tinynet.optim import Adam
from tinynet.shapes import output_size

GPU_REASON = gpu_unavailable_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPU_REASON is not None, reason=f"needs a GPU: {GPU_REASON}")]

DTYPES = (np.float32, np.float64)
# normwise: the device's tanh and sqrt are a few ulp from NumPy's
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
N, H = 5, 7  # odd sizes, so a wrong gate offset cannot line up by chance


@pytest.fixture
def cp():
    import cupy

    return cupy


def normwise_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def assert_close(actual_gpu, expected, dtype):
    import cupy

    actual = cupy.asnumpy(actual_gpu)
    assert actual.dtype == dtype
    assert normwise_error(actual, expected) < RTOL[dtype]


def test_gpu_twins_serve_float_cupy_arrays_only(cp):
    from tinynet import accel

    assert accel.cupy_float(cp.zeros(3, cp.float32), cp.zeros(2))
    assert not accel.cupy_float(np.zeros(3, np.float32))  # NumPy arrays: the Numba kernels
    assert not accel.cupy_float(cp.zeros(3, cp.float32), np.zeros(3, np.float32))
    assert not accel.cupy_float(cp.zeros(3, cp.float16))
    assert not accel.cupy_one_dtype(cp.zeros(3, cp.float32), cp.zeros(2))
    for twins in accel.TWINS.values():  # every GPU twin imports
        for _, spec in twins:
            if spec.startswith("gpu."):
                assert callable(dispatch.load_twin(spec))


@pytest.mark.parametrize("literal_eq13", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_eq12_eq13_lstm_cell_kernels_match_numpy(cp, rng, monkeypatch, dtype, literal_eq13):
    a = rng.standard_normal((N, 4 * H)).astype(dtype)
    c_prev, dh, dc = (rng.standard_normal((N, H)).astype(dtype) for _ in range(3))
    monkeypatch.setattr(dispatch, "ENABLED", False)  # the plain NumPy twin on the host, not Numba
    h, c, cache = lstm_cell_forward(a.copy(), c_prev, literal_eq13)
    da, dc_prev = lstm_cell_backward(dh, dc, cache)
    monkeypatch.setattr(dispatch, "ENABLED", True)
    h_gpu, c_gpu, cache_gpu = lstm_cell_forward(cp.asarray(a), cp.asarray(c_prev), literal_eq13)
    da_gpu, dc_prev_gpu = lstm_cell_backward(cp.asarray(dh), cp.asarray(dc), cache_gpu)

    for actual, expected in [(h_gpu, h), (c_gpu, c), (cache_gpu[0], cache[0]), (cache_gpu[2], cache[2]),
                             (da_gpu, da), (dc_prev_gpu, dc_prev)]:
        assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_cell_kernels_read_strided_gates(cp, rng, monkeypatch, dtype):
    """The buffered decoder's cell writes its activated gates over a strided view of its input."""
    from tinynet.accel.decoder_buffered import lstm_cell_forward_over_input

    monkeypatch.setattr(dispatch, "ENABLED", False)
    a_seq = rng.standard_normal((N, 3, 4 * H)).astype(dtype)
    c_prev = rng.standard_normal((N, H)).astype(dtype)
    h, c, cache = lstm_cell_forward(a_seq[:, 1].copy(), c_prev)
    monkeypatch.setattr(dispatch, "ENABLED", True)
    a_seq_gpu = cp.asarray(a_seq)
    h_gpu, c_gpu, cache_gpu = lstm_cell_forward_over_input(a_seq_gpu[:, 1], cp.asarray(c_prev))
    assert_close(h_gpu, h, dtype)
    assert_close(c_gpu, c, dtype)
    assert_close(a_seq_gpu[:, 1], cache[0], dtype)  # the activated gates were written in place
    assert_close(a_seq_gpu[:, 0], a_seq[:, 0], dtype)  # and nothing around them


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_kernel_matches_plain_update_over_steps(cp, rng, monkeypatch, dtype):
    shapes = {"W": (6, 5), "b": (5,)}
    params = {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}
    grads_per_step = [{name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}
                      for _ in range(4)]
    monkeypatch.setattr(dispatch, "ENABLED", False)
    plain_params = {name: p.copy() for name, p in params.items()}
    plain = Adam(lr=1e-2)
    for grads in grads_per_step:
        plain.step(plain_params, grads)  # the NumPy twin on the host
    monkeypatch.setattr(dispatch, "ENABLED", True)
    gpu_params = {name: cp.asarray(p) for name, p in params.items()}
    fused = Adam(lr=1e-2)
    for grads in grads_per_step:
        fused.step(gpu_params, {name: cp.asarray(g) for name, g in grads.items()})
    for name in shapes:
        assert_close(gpu_params[name], plain_params[name], dtype)
        for slot in Adam.slots:
            assert_close(fused.state[name][slot], plain.state[name][slot], dtype)


@pytest.mark.parametrize("with_average", [True, False])
@pytest.mark.parametrize("scale", [1.0, 1e-3])  # the joint norm under, then over, the bound
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_parameter_update_matches_its_plain_twin(cp, rng, monkeypatch, dtype, scale, with_average):
    """tinynet.optim.update_parameters over three steps: eq. (17), clipping, Adam and the
    weight average in two kernels on the GPU (a tensor over several chunks, biases without
    eq. 17's term) against the four plain functions on the host."""
    from tinynet.accel.gpu import update as cuda_update
    from tinynet.optim import WeightAverage, update_parameters

    shapes = {"W": (70, 61), "b": (61,), "V": (3, 5), "c": (1,)}
    weights = ("W", "V")
    params = {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}
    grads_per_step = [{name: (rng.standard_normal(shape) / scale).astype(dtype) for name, shape in shapes.items()}
                      for _ in range(3)]
    calls, fused = [], cuda_update.update_all

    def counted(*args):
        calls.append(1)
        fused(*args)

    monkeypatch.setattr(cuda_update, "update_all", counted)
    results = {}
    for device in ("cpu", "gpu"):
        monkeypatch.setattr(dispatch, "ENABLED", device == "gpu")
        xp = cp if device == "gpu" else np
        current = {name: xp.array(p) for name, p in params.items()}
        optimizer, average = Adam(lr=1e-2), WeightAverage(current, decay=0.5) if with_average else None
        for holder in (optimizer, average):
            if holder is not None and device == "gpu":
                holder.keep_scalars_on_device(cp, dtype)
        for grads in grads_per_step:
            grads = {name: xp.array(g) for name, g in grads.items()}
            optimizer.begin_step()
            if average is not None:
                average.begin_step()
            update_parameters(current, grads, {name: current[name] for name in weights}, optimizer, 0.01, 1.0, average)
        results[device] = [*current.values(), *grads.values(), *(optimizer.state[name][slot] for name in shapes
                                                                   for slot in Adam.slots)]
        if average is not None:
            results[device] += list(average.average.values())
    assert len(calls) == 3  # every GPU step took the fused kernels
    for actual, expected in zip(results["gpu"], results["cpu"]):
        assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_parameter_update_zeroes_negligible_values_as_its_plain_twin(cp, rng, monkeypatch, dtype):
    """Weights, gradients and averages spread around the flush's bound (tinynet.negligible):
    the fused kernels leave exactly the plain twin's zeros in w, m, v and the average."""
    from tinynet.negligible import negligible_below
    from tinynet.optim import WeightAverage, update_parameters

    bound = negligible_below(dtype)
    near_bound = lambda: (bound * np.exp2(rng.uniform(-8, 8, size=(40, 30)))  # noqa: E731
                          * rng.choice([-1.0, 1.0], size=(40, 30))).astype(dtype)
    start, grads = near_bound(), near_bound()
    grads[:20] = rng.standard_normal((20, 30))  # live rows beside dead ones
    results = {}
    for device in ("cpu", "gpu"):
        monkeypatch.setattr(dispatch, "ENABLED", device == "gpu")
        xp = cp if device == "gpu" else np
        params = {"W": xp.array(start)}
        optimizer, average = Adam(lr=1e-2), WeightAverage(params, decay=0.5)
        if device == "gpu":
            for holder in (optimizer, average):
                holder.keep_scalars_on_device(cp, dtype)
        optimizer.begin_step()
        average.begin_step()
        update_parameters(params, {"W": xp.array(grads)}, params, optimizer, 0.01, 1e6, average)
        state = optimizer.state["W"]
        results[device] = [to_numpy(a) for a in (params["W"], state["m"], state["v"], average.average["W"])]
    for actual, expected in zip(results["gpu"], results["cpu"]):
        assert (expected == 0).any() and (expected != 0).any()
        np.testing.assert_array_equal(actual == 0, expected == 0)
        assert_close(actual, expected, dtype)


def test_adam_kernel_takes_device_scalars(cp, rng):
    """0-d device arrays for step and eps_hat (what a captured graph needs) act as the floats."""
    from tinynet.accel.gpu import fused as cuda_fused

    param, grad = (cp.asarray(rng.standard_normal(9)) for _ in range(2))
    twin = param.copy()
    m, v, m_twin, v_twin = (cp.zeros(9) for _ in range(4))
    cuda_fused.adam_update(param, grad, m, v, 0.9, 0.999, cp.asarray(3e-3), cp.asarray(1e-8))
    cuda_fused.adam_update(twin, grad, m_twin, v_twin, 0.9, 0.999, 3e-3, 1e-8)
    assert cp.array_equal(param, twin) and cp.array_equal(m, m_twin) and cp.array_equal(v, v_twin)


@pytest.mark.parametrize("scale", [1.0, 1e-3])  # the joint norm under, then over, the bound
@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_and_l2_kernels_match_numpy(cp, rng, monkeypatch, dtype, scale):
    """Gradient clipping's reductions and scaling, and eq. (17)'s gradient added in place, on
    the GPU against their NumPy twins (a strided view among the gradients)."""
    from tinynet.functional.losses import add_l2_gradients
    from tinynet.optim import clip_grad_norm

    grads = {"w": rng.standard_normal((37, 70)), "b": rng.standard_normal(70), "v": rng.standard_normal((9, 12))}
    grads = {name: (g / scale).astype(dtype) for name, g in grads.items()}
    weights = {"w": rng.standard_normal((37, 70)).astype(dtype),
               "v": rng.standard_normal((9, 24)).astype(dtype)[:, ::2]}
    results = {}
    for device in ("cpu", "gpu"):
        monkeypatch.setattr(dispatch, "ENABLED", device == "gpu")
        put = cp.asarray if device == "gpu" else np.array
        device_grads = {name: put(g) for name, g in grads.items()}
        device_grads["v"] = put(np.zeros((9, 24), dtype))[:, ::2]
        device_grads["v"][...] = put(grads["v"])
        add_l2_gradients(device_grads, {name: put(w) if device == "gpu" else w for name, w in weights.items()}, 0.01)
        norm = clip_grad_norm(device_grads, 1.0)
        results[device] = [norm, *device_grads.values()]
    for actual, expected in zip(results["gpu"], results["cpu"]):
        assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kh, kw, stride, pad", CONV_CASES)
def test_eq05_im2col_col2im_kernels_match_numpy(cp, rng, monkeypatch, dtype, shape, kh, kw, stride, pad):
    """Columns are copies and col2im adds a pixel's shares in the twin's order: equal bit for bit."""
    x = rng.standard_normal(shape).astype(dtype)
    dcols = rng.standard_normal((shape[1] * kh * kw, shape[0] * output_size(shape[2], kh, stride, pad)
                                 * output_size(shape[3], kw, stride, pad))).astype(dtype)
    monkeypatch.setattr(dispatch, "ENABLED", False)
    cols_twin, dx_twin = im2col(x, kh, kw, stride, pad), col2im(dcols, shape, kh, kw, stride, pad)
    monkeypatch.setattr(dispatch, "ENABLED", True)
    cols, dx = im2col(cp.asarray(x), kh, kw, stride, pad), col2im(cp.asarray(dcols), shape, kh, kw, stride, pad)
    assert cols.dtype == dtype and np.array_equal(cp.asnumpy(cols), cols_twin)
    assert dx.dtype == dtype and np.array_equal(cp.asnumpy(dx), dx_twin)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_eq06_maxpool_kernels_match_numpy(cp, rng, monkeypatch, dtype, shape, size, stride):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = x.flat[1]  # ties too: the first maximum in row-major order wins in both
    monkeypatch.setattr(dispatch, "ENABLED", False)
    y_twin, cache_twin = maxpool2d_forward(x, size, stride)
    dy = rng.standard_normal(y_twin.shape).astype(dtype)
    dx_twin, _ = maxpool2d_backward(dy, cache_twin)
    monkeypatch.setattr(dispatch, "ENABLED", True)
    y, cache = maxpool2d_forward(cp.asarray(x), size, stride)
    dx, _ = maxpool2d_backward(cp.asarray(dy), cache)
    assert np.array_equal(cp.asnumpy(y), y_twin) and np.array_equal(cp.asnumpy(cache[1]), cache_twin[1])
    assert dx.dtype == dtype and np.array_equal(cp.asnumpy(dx), dx_twin)  # shares added in the twin's order


# (N, H, D): odd sizes in one block; several row and unit blocks, two column blocks in the
# backward (K - 1 = 2H > 128), and an output row wider than H
DECODER_SIZES = [(5, 7, 3), (37, 70, 70), (9, 16, 40)]


def _decoder_step_arrays(rng, dtype, N, H, D, bottom):
    """A step buffer [h_prev, input from below, 1] and everything a layer's step reads."""
    width = H + (D if bottom else H)
    step_input = rng.standard_normal((N, width + 1)).astype(dtype)
    step_input[:, -1] = 1
    W = (rng.standard_normal((width + 1, 4 * H)) / np.sqrt(width)).astype(dtype)
    c_prev = rng.standard_normal((N, H)).astype(dtype)
    a_fixed = rng.standard_normal((N, 4 * H)).astype(dtype) if bottom else None
    mask = (rng.random((N, H)) < 0.7).astype(dtype) / dtype(0.7)
    return step_input, W, c_prev, a_fixed, mask


@pytest.mark.parametrize("literal_eq13", [False, True])
@pytest.mark.parametrize("bottom", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_eq08_eq13_decoder_layer_step_kernels_match_numpy(cp, rng, monkeypatch, dtype, bottom, literal_eq13):
    """One fused kernel each way: the step's product, the cell and where h goes, and the backward
    down to the step input, against the buffered decoder's NumPy steps (tinynet.accel.decoder_buffered)."""
    from tinynet.accel.decoder_buffered import lstm_layer_step_backward, lstm_layer_step_forward

    for N, H, D in DECODER_SIZES:
        step_input, W, c_prev, a_fixed, mask = _decoder_step_arrays(rng, dtype, N, H, D, bottom)
        d_up, dc_next = rng.standard_normal((N, H)).astype(dtype), rng.standard_normal((N, H)).astype(dtype)
        dh_next_buffer = rng.standard_normal((N, 3 * H)).astype(dtype)  # dh_next: a strided view of it
        for use_mask, last_step in [(True, False), (False, True)]:
            step_mask = mask if use_mask else None
            results = {}
            for device in ("cpu", "gpu"):
                monkeypatch.setattr(dispatch, "ENABLED", device == "gpu")
                put = cp.asarray if device == "gpu" else np.asarray
                xp = cp if device == "gpu" else np
                h_buffer, up_buffer = xp.full((N, 2 * H + 1), -7, dtype), xp.full((N, H + 3), -7, dtype)
                W_in = put(W)
                c, cache = lstm_layer_step_forward(
                    put(step_input), W_in, put(c_prev), None if a_fixed is None else put(a_fixed),
                    None if step_mask is None else put(step_mask), None if last_step else h_buffer[:, 1:H + 1],
                    up_buffer[:, 2:H + 2], literal_eq13)
                da = xp.empty((N, 4 * H), dtype)
                d_input, dc_prev = lstm_layer_step_backward(
                    put(d_up), None if step_mask is None else put(step_mask), put(dh_next_buffer)[:, H:2 * H],
                    put(dc_next), cache,
                    xp.ascontiguousarray(W_in[:-1].T), da)
                results[device] = [c, cache[0], cache[2], h_buffer, up_buffer, da, d_input, dc_prev]
            for actual, expected in zip(results["gpu"], results["cpu"]):
                assert_close(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_eq14_output_row_kernels_match_numpy(cp, rng, monkeypatch, dtype):
    from tinynet.accel.decoder_buffered import output_row_backward, output_row_forward

    for N, H, D in DECODER_SIZES:
        top = rng.standard_normal((N, H)).astype(dtype)
        W, b = rng.standard_normal((H, D)).astype(dtype), rng.standard_normal(D).astype(dtype)
        dy_seq, dy_fed_back = rng.standard_normal((N, 4, D)).astype(dtype), rng.standard_normal((N, D)).astype(dtype)
        for last_step in (False, True):
            results = {}
            for device in ("cpu", "gpu"):
                monkeypatch.setattr(dispatch, "ENABLED", device == "gpu")
                put = cp.asarray if device == "gpu" else np.asarray
                xp = cp if device == "gpu" else np
                y, feedback_buffer = xp.empty((N, D), dtype), xp.full((N, D + 5), -7, dtype)
                output_row_forward(put(top), put(W), put(b), y, None if last_step else feedback_buffer[:, 2:D + 2])
                dz = xp.empty((N, D), dtype)
                d_top = output_row_backward(put(dy_seq)[:, 1], put(dy_fed_back), y, put(W), dz)
                results[device] = [y, feedback_buffer, dz, d_top]
            for actual, expected in zip(results["gpu"], results["cpu"]):
                assert_close(actual, expected, dtype)


def test_decoder_on_the_gpu_matches_the_cpu(cp, rng, monkeypatch):
    """The whole decoder (the buffered twin's fused steps in float64, dropout on) against the
    plain reference on the host; on the GPU the weight gradients come from the side stream
    (dispatch.side_stream)."""
    from tinynet.layers import LSTMDecoder

    x_rows, v = rng.random((6, 28, 28)), rng.standard_normal((6, 100))
    dy = rng.standard_normal((6, 28, 28))
    results = {}
    for device in ("cpu", "gpu"):
        monkeypatch.setattr(dispatch, "ENABLED", device == "gpu")
        decoder = LSTMDecoder(hidden_size=24, num_layers=3, rng=np.random.default_rng(5), dropout=0.3,
                              dtype=np.float64)
        put = cp.asarray if device == "gpu" else np.asarray
        if device == "gpu":
            decoder.to(cp)
        decoder.masks.counter_on_cpu = device == "cpu"
        y = decoder.forward(put(x_rows), put(v), train=True)
        side = dispatch.side_stream(put(dy))
        assert isinstance(side, dispatch.RunAtOnce) == (device == "cpu")
        dx_rows, dv = decoder.backward_through_time(put(dy), side)
        side.join()
        results[device] = [y, dx_rows, dv] + [decoder.grads[key] for key in sorted(decoder.grads)]
    for actual, expected in zip(results["gpu"], results["cpu"]):
        assert_close(actual, expected, np.float64)


GEMM_SHAPES = [(1, 1, 1), (5, 3, 7), (100, 512, 257), (37, 70, 2900), (32, 25, 9000), (64, 800, 5000),
               (130, 260, 40)]


@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_kernel_matches_cublas(cp, rng, dtype, layout):
    """Every shape class: one tile, 32- and 64-wide tiles, split K, transposed (strided) views."""
    from tinynet.accel.gpu.fused import matmul

    for M, N, K in GEMM_SHAPES:
        a = cp.asarray(rng.standard_normal((K, M) if layout[0] == "t" else (M, K)).astype(dtype))
        b = cp.asarray(rng.standard_normal((N, K) if layout[1] == "t" else (K, N)).astype(dtype))
        a, b = (a.T if layout[0] == "t" else a), (b.T if layout[1] == "t" else b)
        product = matmul(a, b)
        assert product.shape == (M, N) and product.flags.c_contiguous
        assert normwise_error(cp.asnumpy(product), cp.asnumpy(a @ b)) < RTOL[dtype] * 10, (M, N, K)


@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cublas_called_directly_matches_cupy(cp, rng, dtype, layout):
    """The product a captured step uses (tinynet.accel.gpu.blas), here outside a capture."""
    from tinynet.accel.gpu import blas as cuda_blas

    if not cuda_blas.prepare():
        pytest.skip("cuBLAS's C API cannot serve captures here (CUDA < 12.2 or ROCm): the GEMM kernel does")
    for M, N, K in GEMM_SHAPES:
        a = cp.asarray(rng.standard_normal((K, M) if layout[0] == "t" else (M, K)).astype(dtype))
        b = cp.asarray(rng.standard_normal((N, K) if layout[1] == "t" else (K, N)).astype(dtype))
        a, b = (a.T if layout[0] == "t" else a), (b.T if layout[1] == "t" else b)
        product = cuda_blas.gemm(a, b)
        assert product.shape == (M, N) and product.flags.c_contiguous
        assert normwise_error(cp.asnumpy(product), cp.asnumpy(a @ b)) < RTOL[dtype] * 10, (M, N, K)
    big = cp.asarray(rng.standard_normal((6, 10, 9)).astype(dtype))
    for a, b in [(big[2, :, 1:8], big[4, 2:9, :]), (big[1, ::2, ::3], big[3, :3, ::2])]:  # strided views
        assert normwise_error(cp.asnumpy(cuda_blas.gemm(a, b)), cp.asnumpy(a) @ cp.asnumpy(b)) < RTOL[dtype] * 10


def test_gemm_kernel_reads_row_slices_and_empty_k(cp, rng):
    from tinynet.accel.gpu.fused import matmul

    big = cp.asarray(rng.standard_normal((6, 10, 9)))
    a, b = big[2, :, 1:8], big[4, 2:9, :]  # non-contiguous rows
    assert normwise_error(cp.asnumpy(matmul(a, b)), cp.asnumpy(a) @ cp.asnumpy(b)) < 1e-13
    assert cp.array_equal(matmul(cp.ones((3, 0)), cp.ones((0, 4))), cp.zeros((3, 4)))


def test_counter_random_matches_its_numpy_twin_bit_for_bit(cp):
    from tinynet.accel.gpu.fused import CounterRandom
    from tinynet.functional.dropout import counter_uniform

    generator = CounterRandom(12345)
    first, second = generator.random((3, 50)), generator.random((7,))
    generator.reseed(99)
    third = generator.random((4, 5))
    assert cp.asnumpy(first).tobytes() == counter_uniform(12345, 0, (3, 50)).tobytes()
    assert cp.asnumpy(second).tobytes() == counter_uniform(12345, 1, (7,)).tobytes()
    assert cp.asnumpy(third).tobytes() == counter_uniform(99, 0, (4, 5)).tobytes()


def test_captured_step_replays_match_eager_calls(cp, rng):
    from tinynet.accel.gpu.graph import CapturedStep
    from tinynet.functional.matmul import matmul

    W = cp.asarray(rng.standard_normal((4, 3)))
    batches = [rng.standard_normal((5, 4)) for _ in range(5)]
    x_buf, total = cp.empty((5, 4)), cp.zeros(3)

    def step():
        y = cp.tanh(matmul(x_buf, W))  # CuPy's `@` (cuBLAS) cannot be captured
        total[...] += y.sum(axis=0)
        return y

    captured = CapturedStep(step, inputs=(x_buf,), warmup=2)
    expected_total = cp.zeros(3)
    for launch, batch in enumerate(batches):
        y = captured.launch(batch)
        assert captured.captured == (launch >= 2)  # two eager warm-up steps, then replays
        y_eager = cp.tanh(cp.asarray(batch) @ W)
        expected_total += y_eager.sum(axis=0)
        assert cp.allclose(y, y_eager, rtol=1e-12, atol=0)
        assert cp.allclose(total, expected_total, rtol=1e-12, atol=0)


def test_captured_step_falls_back_to_eager_on_a_host_sync(cp, capsys):
    from tinynet.accel.gpu.graph import CapturedStep

    x = cp.ones(3)
    captured = CapturedStep(lambda: float(x.sum()), warmup=0)
    assert captured.launch() == 3.0  # ran eagerly after the failed capture
    assert not captured.captured and "capture failed" in captured.failure
    assert "capture failed" in capsys.readouterr().err
