"""tinynet.kernels.numba_gemm: the float32 matrix product agrees with NumPy's `a @ b` for
every layout the layers pass and every edge of its tiles. The kernels compile on any CPU,
so these tests run everywhere, also where matmul does not use them (no AVX-512)."""

import numba
import numpy as np
import pytest

import tinynet.kernels as kernels
from tinynet.functional.matmul import matmul
from tinynet.kernels import numba_gemm
from tinynet.kernels.numba_gemm import KC_NN, KC_NT, LANES, MR, NR, NT_COLS, NT_ROWS

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


def test_matmul_uses_the_kernel_for_float32_on_avx512_only(monkeypatch):
    f32, f64 = np.ones((2, 3), np.float32), np.ones((3, 2), np.float64)
    monkeypatch.setattr(kernels, "ENABLED", True)
    expected = numba_gemm.matmul if numba_gemm.USEFUL else None
    assert kernels.cpu_matmul(f32, f32.T) is expected
    assert kernels.cpu_matmul(f64.T, f64) is None  # the float64 gradient checks keep NumPy's
    assert kernels.cpu_matmul(f32, f64) is None
    assert kernels.cpu_matmul(f32[0], f32.T) is None
    monkeypatch.setattr(kernels, "ENABLED", False)
    assert kernels.cpu_matmul(f32, f32.T) is None
    np.testing.assert_array_equal(matmul(f32, f32.T), np.full((2, 2), 3.0, np.float32))
