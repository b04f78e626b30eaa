"""tinynet.accel.cpu.numba_gemm: the float32 matrix product agrees with NumPy's `a @ b` for
every layout the layers pass and every edge of its tiles, and the direct correlations with
the im2col / col2im products they replace. The kernels compile on any CPU, so these tests
run everywhere, also where the layers do not use them (no AVX-512)."""

import numba
import numpy as np
import pytest

import tinynet.functional.conv as conv
from tinynet import dispatch
from tinynet.functional.matmul import matmul

accel = pytest.importorskip("tinynet.accel", reason="the accelerated twins (tinynet.accel) are absent")
numba_gemm = pytest.importorskip("tinynet.accel.cpu.numba_gemm", reason="Numba is not usable")
numba_kernels = pytest.importorskip("tinynet.accel.cpu.numba_kernels", reason="Numba is not usable")
cpu_conv = pytest.importorskip("tinynet.accel.cpu.conv", reason="Numba is not usable")
KC_NN, KC_NT, LANES, MR, NR, NR_W, NT_COLS, NT_ROWS = (getattr(numba_gemm, name) for name in (
    "KC_NN", "KC_NT", "LANES", "MR", "NR", "NR_W", "NT_COLS", "NT_ROWS"))

# (M, K, N): tiles exactly; rows, columns or both past a tile; smaller than one tile; K over
# several cache blocks, with the last block shorter than a vector; K below one vector
SHAPES = [
    (2 * MR, 32, 2 * NR),
    (MR + 3, 29, NR + 5),
    (3, 7, 5),
    (1, 1, 1),
    (MR, KC_NN + 1, NR),
    (NT_ROWS + 1, KC_NT + 5, NT_COLS + 2),
    (2 * NT_ROWS, LANES - 1, 3 * NT_COLS),
    (100, 257, 512),
]
# how a and b are laid out: C-contiguous, or the transpose of a C-contiguous array (the
# layers' weight and input gradients), or a strided view
LAYOUTS = ["nn", "tn", "nt", "tt", "strided"]


def operands(M, K, N, layout, values):
    """a (M, K), b (K, N) in `layout`, from values(shape)."""
    a = values((K, M)).T if layout in ("tn", "tt") else values((M, K))
    b = values((N, K)).T if layout in ("nt", "tt") else values((K, N))
    if layout == "strided":  # every other column of a, rows of b read backwards
        a = values((M, 2 * K))[:, ::2]
        b = values((K, N))[::-1]
    return a, b


def small_integers(rng):
    """Integer values in [-3, 3]: every partial sum of these products is exact in float32,
    so any order of summation gives the exact product."""
    return lambda shape: rng.integers(-3, 4, size=shape).astype(np.float32)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("M, K, N", SHAPES)
def test_product_is_exact_where_float32_sums_are(rng, M, K, N, layout):
    a, b = operands(M, K, N, layout, small_integers(rng))
    c = numba_gemm.matmul(a, b)
    assert c.dtype == np.float32 and c.shape == (M, N) and c.flags.c_contiguous
    np.testing.assert_array_equal(c, a.astype(np.float64) @ b.astype(np.float64))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("M, K, N", SHAPES)
def test_product_matches_numpy_to_float32_rounding(rng, M, K, N, layout):
    """Normwise error against the float64 product at most 1e-6 of |a| |b| (float32's epsilon
    is 1.2e-7; a wrong or missing term would be of order 1)."""
    a, b = operands(M, K, N, layout, lambda shape: rng.standard_normal(shape, dtype=np.float32))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)).max()
    assert np.abs(numba_gemm.matmul(a, b) - exact).max() / scale < 1e-6
    assert np.abs(a @ b - exact).max() / scale < 1e-6  # NumPy's own, for scale


def test_product_repeats_exactly_on_any_number_of_threads(rng):
    a, b = operands(100, 300, 70, "nn", lambda shape: rng.standard_normal(shape, dtype=np.float32))
    at, bt = operands(64, 300, 50, "nt", lambda shape: rng.standard_normal(shape, dtype=np.float32))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = numba_gemm.matmul(a, b), numba_gemm.matmul(at, bt)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        every = numba_gemm.matmul(a, b), numba_gemm.matmul(at, bt)
    finally:
        numba.set_num_threads(threads)
    for x, y in zip(one, every):
        np.testing.assert_array_equal(x, y)


def test_empty_products_and_misaligned_shapes():
    assert numba_gemm.matmul(np.ones((3, 0), np.float32), np.ones((0, 4), np.float32)).tolist() == [[0.0] * 4] * 3
    assert numba_gemm.matmul(np.ones((0, 5), np.float32), np.ones((5, 4), np.float32)).shape == (0, 4)
    with pytest.raises(ValueError, match="do not align"):
        numba_gemm.matmul(np.ones((3, 5), np.float32), np.ones((4, 2), np.float32))


def test_the_kernels_serve_float32_on_avx512_only():
    f32, f64 = np.ones((2, 3), np.float32), np.ones((3, 2), np.float64)
    assert accel.numpy_float32_on_avx512(f32, f32.T) == numba_gemm.USEFUL
    assert not accel.numpy_float32_on_avx512(f64.T, f64)  # the float64 gradient checks keep NumPy's
    assert not accel.numpy_float32_on_avx512(f32, f64)
    # the image-plane kernels take every core only where nothing spins on it between products
    planes = (numba_kernels._im2col, numba_kernels._col2im, numba_kernels._maxpool2d,
              numba_kernels._maxpool2d_backward, numba_kernels._copy_planes)
    assert all(kernel.targetoptions["parallel"] == numba_gemm.USEFUL for kernel in planes)
    with dispatch.reference_only():
        np.testing.assert_array_equal(matmul(f32, f32.T), np.full((2, 2), 3.0, np.float32))
    np.testing.assert_array_equal(matmul(f32[0], f32.T), np.full(2, 3.0, np.float32))  # 1-D: NumPy's


# (N, C, H, W, F, k, pad, stride): Table 1's conv1 and (smaller) conv2; an output row and a
# channel count just past a tile (the last tiles overlap); a 'valid' 3 x 3 correlation; the
# CNN-CNN's first transposed convolution seen from its input gradient (stride 2, 7 x 7 maps)
# and an odd strided one
CORRELATIONS = [
    (2, 1, 28, 28, 32, 5, 2, 1),
    (2, 3, 14, 14, 64, 5, 2, 1),
    (2, 3, 14, 15, NR + 1, 5, 2, 1),
    (1, 2, 18, 20, NR, 3, 0, 1),
    (2, 32, 14, 14, 64, 5, 2, 2),
    (1, 3, 15, 17, NR + 1, 3, 1, 2),
]
# the same where the direct weight gradient serves (C * k * k a multiple of MR_W): Table 1's
# conv1 and conv2 (fewer images), more channels than a tile, fewer, a 'valid' 3 x 3, stride 2
WEIGHT_GRADIENTS = [(2, 1, 28, 28, 32, 5, 2, 1), (2, 32, 14, 14, 64, 5, 2, 1), (3, 2, 9, 11, NR_W + 3, 5, 2, 1),
                    (2, 5, 6, 7, 7, 3, 0, 1), (2, 32, 14, 14, 64, 5, 2, 2), (1, 3, 15, 17, 9, 5, 1, 2)]


def columns_path(function, *args):
    """function(*args) by the reference's im2col / col2im and NumPy's products."""
    with dispatch.reference_only():
        return function(*args)


@pytest.mark.parametrize("N, C, H, W, F, k, pad, stride", CORRELATIONS)
def test_direct_correlation_equals_the_columns_product(rng, N, C, H, W, F, k, pad, stride):
    values = small_integers(rng)
    x, weights = values((N, C, H, W)), values((F, C, k, k))
    expected = columns_path(conv.correlate, x, weights, stride, pad)
    assert numba_gemm.correlate_fits(expected.shape[3], F, stride)
    np.testing.assert_array_equal(numba_gemm.correlate(numba_gemm.zero_padded(x, pad), weights, stride), expected)


@pytest.mark.parametrize("N, C, H, W, F, k, pad, stride", WEIGHT_GRADIENTS)
def test_direct_weight_gradient_equals_the_columns_product(rng, N, C, H, W, F, k, pad, stride):
    values = small_integers(rng)
    x, weights = values((N, C, H, W)), values((F, C, k, k))
    dy = values((N, F, (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1))
    _, expected = columns_path(conv.conv2d_backward, dy, (x, weights, stride, pad), False)
    assert numba_gemm.weight_gradient_fits(C, k, k)
    x_padded = numba_gemm.zero_padded(x, pad)
    np.testing.assert_array_equal(numba_gemm.correlate_weight_gradient(x_padded, dy, k, k, stride), expected["W"])


# (N, C_in, H, C_out, k, stride, pad, output_padding): the CNN-CNN's first transposed
# convolution (fewer images), odd and even kernels, stride 1
TRANSPOSED = [(2, 64, 7, 32, 5, 2, 2, 1), (2, 3, 8, NR + 1, 3, 2, 1, 1), (2, 3, 9, 40, 4, 2, 1, 0),
              (1, 2, 8, NR, 3, 1, 1, 0)]


@pytest.mark.parametrize("N, C_in, H, C_out, k, stride, pad, output_padding", TRANSPOSED)
def test_direct_transposed_correlation_equals_col2im(rng, N, C_in, H, C_out, k, stride, pad,
                                                     output_padding):
    values = small_integers(rng)
    x, weights, bias = values((N, C_in, H, H)), values((C_in, C_out, k, k)), np.zeros(C_out, np.float32)
    expected, _ = columns_path(conv.conv_transpose2d_forward, x, weights, bias, stride, pad, output_padding)
    assert numba_gemm.transposed_fits(expected.shape[3], C_out, stride)
    np.testing.assert_array_equal(numba_gemm.correlate_transposed(x, weights, stride, pad, expected.shape[2:]),
                                  expected)


@pytest.mark.skipif(not numba_gemm.USEFUL, reason="conv2d takes the direct path only on CPUs with AVX-512")
@pytest.mark.parametrize("C, k, direct", [(NR, 5, (True, True)), (NR, 4, (False, True)),
                                          (2, 5, (True, False)), (2, 4, (False, False))])
def test_conv2d_backward_direct_and_by_columns_agree(rng, C, k, direct):
    """The dispatch in conv2d_backward (direct weight and input gradients, as `direct` says):
    float32 normwise error below 1e-5 against the columns (sums of up to 1,600 terms; a wrong
    or missing term would be of order 1)."""
    pad = k // 2  # a 4 x 4 window: 3 taps of the 16 in a tile of MR_W = 5 would be left over
    x = rng.standard_normal((3, C, 14, 16), dtype=np.float32)
    weights = rng.standard_normal((40, C, k, k), dtype=np.float32)
    dy = rng.standard_normal((3, 40, 15 - k + 2 * pad, 17 - k + 2 * pad), dtype=np.float32)
    assert (numba_gemm.weight_gradient_fits(C, k, k),
            pad < k and numba_gemm.correlate_fits(16, C, 1)) == direct
    bias = np.zeros(40, np.float32)
    direct_result = conv.conv2d_backward(dy, conv.conv2d_forward(x, weights, bias, 1, pad)[1])
    by_columns = columns_path(conv.conv2d_backward, dy, (x, weights, 1, pad))
    pairs = [(direct_result[0], by_columns[0])] + [(direct_result[1][key], by_columns[1][key]) for key in ("W", "b")]
    for got, expected in pairs:
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-5


@pytest.mark.skipif(not numba_gemm.USEFUL, reason="the layers take the direct path only on CPUs with AVX-512")
def test_conv_transpose2d_direct_and_by_columns_agree(rng):
    """The CNN-CNN's first transposed convolution (64@7x7 -> 32@14x14, fewer images): its
    forward and backward by the direct correlations equal the columns' to float32 rounding
    (normwise 1e-5)."""
    x = rng.standard_normal((3, 64, 7, 7), dtype=np.float32)
    weights = rng.standard_normal((64, 32, 5, 5), dtype=np.float32)
    dy = rng.standard_normal((3, 32, 14, 14), dtype=np.float32)
    cache = (x, weights, 2, 2)
    bias = rng.standard_normal(32, dtype=np.float32)
    direct_result = conv.conv_transpose2d_backward(dy, cache)
    by_columns = columns_path(conv.conv_transpose2d_backward, dy, cache)
    forward = [conv.conv_transpose2d_forward(x, weights, bias, 2, 2, 1)[0],
               columns_path(conv.conv_transpose2d_forward, x, weights, bias, 2, 2, 1)[0]]
    pairs = [forward, (direct_result[0], by_columns[0])]
    pairs += [(direct_result[1][key], by_columns[1][key]) for key in ("W", "b")]
    for got, expected in pairs:
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-5
