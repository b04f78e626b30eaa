"""Numba kernels for the CPU: each computes what a plain NumPy twin in tinynet.functional
or tinynet.optim computes, in one pass over memory instead of many temporaries.

    im2col, col2im              tinynet.functional.conv    (eq. 5 and its adjoint)
    images_to_rows,             tinynet.functional.conv    (the layouts around its products)
    rows_into_images
    maxpool2d, its backward     tinynet.functional.pool    (eq. 6)
    lstm_cell_forward/backward  tinynet.functional.lstm    (eqs. 8-13)
    adam_update                 tinynet.optim.adam
    flush_negligible            tinynet.negligible

The kernels over image planes (im2col, col2im, pooling, the layout copies) share the planes
out over Numba's threads (prange) where the products are tinynet's own (OWN_PRODUCTS:
tinynet.accel.cpu.numba_gemm on CPUs with AVX-512), and nothing else competes for the cores.
Where the products are OpenBLAS's, its idle workers keep spinning for a while after each
product, and a parallel kernel that fights them for the cores slows a whole step
several-fold: there they compile serial (prange is then range).
Each (n, c) plane is written by one iteration, so either way the kernels are free of races
and compute the same. The LSTM cells and the Adam update stay serial: per call they are too
small to share.

Kernels are compiled once and cached on disk (cache=True); error_model="numpy" drops
Python's zero-division checks so that the loops vectorize. Constants take the arrays'
dtype, so float32 stays float32.

tanh, the one transcendental function here, is a rational approximation for float32
(a few ulp from the exact value, like NumPy's own SIMD tanh, but vectorizable) and the
C library's tanh for float64, so the float64 gradient checks see exact maths.
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ...negligible import negligible_below
from .numba_gemm import USEFUL as OWN_PRODUCTS

JIT = {"cache": True, "error_model": "numpy"}
# the kernels over image planes: on every core where the products are tinynet's own, else serial
PLANES_JIT = {**JIT, "parallel": OWN_PRODUCTS}


def tanh(x):
    return math.tanh(x)


@overload(tanh)
def _tanh_for(x):
    if x == types.float32:
        return _tanh_float32
    return lambda x: math.tanh(x)


def _tanh_float32(x):
    """tanh as a ratio of odd and even polynomials (the minimax fit of Eigen's
    ptanh_float), clamped where float32 tanh is +-1 to rounding."""
    clamp = np.float32(7.90531110763549805)
    xc = min(max(x, -clamp), clamp)
    x2 = xc * xc
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x if abs(x) < np.float32(0.0004) else xc * p / q


# ---- convolution: im2col and its adjoint col2im (tinynet.functional.conv) ----

@njit(**JIT)
def _padded(plane, pad):
    """A zero-padded copy of one (H, W) image plane."""
    H, W = plane.shape
    out = np.zeros((H + 2 * pad, W + 2 * pad), dtype=plane.dtype)
    out[pad:pad + H, pad:pad + W] = plane
    return out


@njit(inline="always", **JIT)
def _copy_strided(src, stride, dst):
    """dst[k] = src[k * stride] for every k of dst."""
    if stride == 1:  # the common case, contiguous on both sides
        for k in range(dst.size):
            dst[k] = src[k]
    else:
        for k in range(dst.size):
            dst[k] = src[k * stride]


@njit(inline="always", **JIT)
def _add_strided(src, dst, stride):
    """dst[k * stride] += src[k] for every k of src."""
    if stride == 1:
        for k in range(src.size):
            dst[k] += src[k]
    else:
        for k in range(src.size):
            dst[k * stride] += src[k]


@njit(**PLANES_JIT)
def _im2col(x, kh, kw, stride, pad, cols):
    N, C, H, W = x.shape
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    for plane in prange(N * C):  # plane (n, c) fills its own columns of the rows (c, i, j)
        n, c = plane // C, plane % C
        x_padded = _padded(x[n, c], pad)
        for i in range(kh):
            for j in range(kw):
                col = cols[(c * kh + i) * kw + j, n * Ho * Wo:(n + 1) * Ho * Wo]
                for ho in range(Ho):
                    # one output row: Wo inputs `stride` apart (one-dimensional views vectorize)
                    _copy_strided(x_padded[ho * stride + i, j:], stride, col[ho * Wo:(ho + 1) * Wo])


def im2col(x, kh, kw, stride, pad):
    """x: (N, C, H, W) -> cols (C*kh*kw, N*Ho*Wo), row (c, i, j), column (n, h, w); pads with 0."""
    N, C, H, W = x.shape
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    cols = np.empty((C * kh * kw, N * Ho * Wo), dtype=x.dtype)
    _im2col(np.ascontiguousarray(x), kh, kw, stride, pad, cols)
    return cols


@njit(**PLANES_JIT)
def _col2im(cols, kh, kw, stride, pad, dx):
    N, C, H, W = dx.shape
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    for plane in prange(N * C):  # plane (n, c) of dx gathers from its own columns
        n, c = plane // C, plane % C
        dx_padded = np.zeros((H + 2 * pad, W + 2 * pad), dtype=dx.dtype)
        for i in range(kh):
            for j in range(kw):
                col = cols[(c * kh + i) * kw + j, n * Ho * Wo:(n + 1) * Ho * Wo]
                for ho in range(Ho):
                    _add_strided(col[ho * Wo:(ho + 1) * Wo], dx_padded[ho * stride + i, j:], stride)
        dx[n, c] = dx_padded[pad:pad + H, pad:pad + W]


def col2im(cols, x_shape, kh, kw, stride, pad):
    """Adjoint of im2col: cols (C*kh*kw, N*Ho*Wo) -> dx (N, C, H, W), summing overlapping windows."""
    dx = np.empty(x_shape, dtype=cols.dtype)
    _col2im(np.ascontiguousarray(cols), kh, kw, stride, pad, dx)
    return dx


@njit(**PLANES_JIT)
def _copy_planes(images, rows, to_rows):
    """Plane (n, c) of images (N, C, H, W) <-> columns n*H*W.. of row c of rows (C, N*H*W)."""
    N, C, H, W = images.shape
    for plane in prange(N * C):
        n, c = plane // C, plane % C
        row = rows[c, n * H * W:(n + 1) * H * W]
        for h in range(H):
            for w in range(W):
                if to_rows:
                    row[h * W + w] = images[n, c, h, w]
                else:
                    images[n, c, h, w] = row[h * W + w]


def images_to_rows(x):
    """(N, C, H, W) -> (C, N*H*W), each image plane one contiguous copy."""
    N, C, H, W = x.shape
    rows = np.empty((C, N * H * W), dtype=x.dtype)
    _copy_planes(np.ascontiguousarray(x), rows, True)
    return rows


def rows_into_images(rows, out):
    """out (n, F, Ho, Wo) <- rows (F, n*Ho*Wo); out C-contiguous."""
    _copy_planes(out, np.ascontiguousarray(rows), False)


# ---- max pooling (tinynet.functional.pool) ----

@njit(**PLANES_JIT)
def _maxpool2d(x, size, stride, y, winner):
    N, C, Ho, Wo = y.shape
    for image_plane in prange(N * C):
        n, c = image_plane // C, image_plane % C
        plane, best_of, winner_of = x[n, c], y[n, c], winner[n, c]
        for ho in range(Ho):
            h = ho * stride
            if size == 2 and stride == 2:  # Table 1's pools: the window unrolled (3-6x faster)
                top, bottom = plane[h], plane[h + 1]
                for wo in range(Wo):
                    best, best_at = top[2 * wo], 0
                    if top[2 * wo + 1] > best:  # strict: the first maximum wins
                        best, best_at = top[2 * wo + 1], 1
                    if bottom[2 * wo] > best:
                        best, best_at = bottom[2 * wo], 2
                    if bottom[2 * wo + 1] > best:
                        best, best_at = bottom[2 * wo + 1], 3
                    best_of[ho, wo], winner_of[ho, wo] = best, best_at
                continue
            for wo in range(Wo):
                w = wo * stride
                best, best_at = plane[h, w], 0
                for p in range(size):
                    for q in range(size):
                        if plane[h + p, w + q] > best:  # strict: the first maximum wins
                            best, best_at = plane[h + p, w + q], p * size + q
                best_of[ho, wo], winner_of[ho, wo] = best, best_at


def maxpool2d(x, size, stride):
    """x: (N, C, H, W) -> y (N, C, Ho, Wo) and winner (int16, offset p * size + q of each maximum)."""
    N, C, H, W = x.shape
    shape = (N, C, (H - size) // stride + 1, (W - size) // stride + 1)
    y, winner = np.empty(shape, dtype=x.dtype), np.empty(shape, dtype=np.int16)
    _maxpool2d(np.ascontiguousarray(x), size, stride, y, winner)
    return y, winner


@njit(**PLANES_JIT)
def _maxpool2d_backward(dy, winner, size, stride, dx):
    N, C, Ho, Wo = dy.shape
    for image_plane in prange(N * C):
        n, c = image_plane // C, image_plane % C
        grad, winner_of, plane = dy[n, c], winner[n, c], dx[n, c]
        if size == 2 and stride == 2:  # disjoint windows: write every pixel once, no zeroing pass
            plane[2 * Ho:] = 0  # rows and columns that fill no window (floored sizes)
            plane[:, 2 * Wo:] = 0
            for ho in range(Ho):
                top, bottom = plane[2 * ho], plane[2 * ho + 1]
                for wo in range(Wo):
                    g, at = grad[ho, wo], winner_of[ho, wo]
                    top[2 * wo] = g if at == 0 else 0
                    top[2 * wo + 1] = g if at == 1 else 0
                    bottom[2 * wo] = g if at == 2 else 0
                    bottom[2 * wo + 1] = g if at == 3 else 0
        else:
            plane[...] = 0
            for ho in range(Ho):
                for wo in range(Wo):
                    p, q = winner_of[ho, wo] // size, winner_of[ho, wo] % size
                    plane[ho * stride + p, wo * stride + q] += grad[ho, wo]  # windows may overlap


def maxpool2d_backward(dy, winner, x_shape, size, stride):
    """dy: (N, C, Ho, Wo) -> dx (N, C, H, W), each dy added to its window's arg-max."""
    dx = np.empty(x_shape, dtype=dy.dtype)
    _maxpool2d_backward(np.ascontiguousarray(dy), winner, size, stride, dx)
    return dx


# ---- the LSTM cell, eqs. (8)-(13) (tinynet.functional.lstm) ----

@njit(**JIT)
def _lstm_cell_forward(gates, c_prev, literal_eq13, h, c, tanh_c):
    N, H = c_prev.shape
    half = gates.dtype.type(0.5)
    for n in range(N):
        # one-dimensional views of a row: the inner loop vectorizes (2-d indexing does not)
        a_i, a_f, a_g, a_o = gates[n, :H], gates[n, H:2 * H], gates[n, 2 * H:3 * H], gates[n, 3 * H:]
        c_prev_n, h_n, c_n, tanh_c_n = c_prev[n], h[n], c[n], tanh_c[n]
        for k in range(H):
            # sigmoid(a) = (tanh(a / 2) + 1) / 2, as in the NumPy twin
            i = half * tanh(half * a_i[k]) + half          # (8)
            f = half * tanh(half * a_f[k]) + half          # (9)
            g = tanh(a_g[k])                               # (11)
            o = half * tanh(half * a_o[k]) + half          # (10)
            a_i[k], a_f[k], a_g[k], a_o[k] = i, f, g, o
            c_k = f * c_prev_n[k] + i * g                  # (12)
            tanh_c_k = tanh(c_k)
            c_n[k], tanh_c_n[k] = c_k, tanh_c_k
            h_n[k] = (i if literal_eq13 else o) * tanh_c_k  # (13)


def lstm_cell_forward(gates, c_prev, literal_eq13):
    """gates: (N, 4H) pre-activations, overwritten by the activated gates; c_prev (N, H).

    Returns h, c, tanh(c), each (N, H).
    """
    h, c, tanh_c = (np.empty_like(c_prev) for _ in range(3))
    _lstm_cell_forward(gates, np.ascontiguousarray(c_prev), literal_eq13, h, c, tanh_c)
    return h, c, tanh_c


@njit(inline="always", **JIT)
def _flushed(x, below):
    return x if abs(x) >= below else x - x  # 0 of x's type where |x| < below (tinynet.negligible)


@njit(**JIT)
def _lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, literal_eq13, below, da, dc_prev):
    N, H = c_prev.shape
    zero, one, below = gates.dtype.type(0), gates.dtype.type(1), gates.dtype.type(below)
    for n in range(N):
        a_i, a_f, a_g, a_o = gates[n, :H], gates[n, H:2 * H], gates[n, 2 * H:3 * H], gates[n, 3 * H:]
        da_i, da_f, da_g, da_o = da[n, :H], da[n, H:2 * H], da[n, 2 * H:3 * H], da[n, 3 * H:]
        dh_n, dc_n, c_prev_n, tanh_c_n, dc_prev_n = dh[n], dc[n], c_prev[n], tanh_c[n], dc_prev[n]
        for k in range(H):
            i, f, g, o, t = a_i[k], a_f[k], a_g[k], a_o[k], tanh_c_n[k]
            dc_k = dc_n[k] + dh_n[k] * (i if literal_eq13 else o) * (one - t * t)    # (13)
            d_i, d_o = dc_k * g, dh_n[k] * t                                        # (12), (13)
            if literal_eq13:
                d_i, d_o = d_i + d_o, zero
            da_i[k] = _flushed(d_i * (i - i * i), below)                  # sigmoid' = s - s^2
            da_f[k] = _flushed(dc_k * c_prev_n[k] * (f - f * f), below)
            da_g[k] = _flushed(dc_k * i * (one - g * g), below)           # tanh' = 1 - g^2
            da_o[k] = _flushed(d_o * (o - o * o), below)
            dc_prev_n[k] = _flushed(dc_k * f, below)


def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, literal_eq13, da):
    """dh, dc: (N, H); gates (N, 4H) activated, c_prev and tanh_c (N, H) from the forward.

    Writes the pre-activation gradient into da (N, 4H); returns da and dc_prev (N, H), their
    negligible values 0 (tinynet.negligible).
    """
    dc_prev = np.empty_like(c_prev)
    _lstm_cell_backward(np.ascontiguousarray(dh), np.ascontiguousarray(dc), gates, c_prev, tanh_c,
                        literal_eq13, negligible_below(gates.dtype), da, dc_prev)
    return da, dc_prev


# ---- Adam (tinynet.optim.adam) ----

@njit(**JIT)
def _adam_update(param, grad, m, v, beta1, beta2, step, eps_hat):
    dtype = param.dtype.type
    b1, b2, one_b1, one_b2 = dtype(beta1), dtype(beta2), dtype(1 - beta1), dtype(1 - beta2)
    step, eps_hat = dtype(step), dtype(eps_hat)
    for k in range(param.size):
        g = grad[k]
        m[k] = m[k] * b1 + one_b1 * g
        v[k] = v[k] * b2 + one_b2 * (g * g)
        param[k] -= step * m[k] / (math.sqrt(v[k]) + eps_hat)


def adam_update(param, grad, m, v, beta1, beta2, step, eps_hat):
    """In place, all C-contiguous and alike: m, v <- running moments; param -= step m / (sqrt(v) + eps_hat).

    step and eps_hat: floats or 0-d arrays (an optimizer keeping its scalars in an array).
    """
    _adam_update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), beta1, beta2,
                 float(step), float(eps_hat))


# ---- negligible values (tinynet.negligible) ----

@njit(**JIT)
def _flush_negligible(flat, below):
    below, zero = flat.dtype.type(below), flat.dtype.type(0)
    for k in range(flat.size):
        if abs(flat[k]) < below:
            flat[k] = zero


def flush_negligible(array, below):
    """In place, C-contiguous: every value of magnitude below `below` becomes 0."""
    _flush_negligible(array.reshape(-1), below)
