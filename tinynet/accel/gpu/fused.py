"""Fused CuPy kernels for the GPU: each computes what a plain twin in tinynet.functional or
tinynet.optim computes (and what the Numba kernel of numba_kernels computes, with the same
signature), in one kernel launch instead of a dozen elementwise ones and their temporaries.

    lstm_cell_forward/backward  tinynet.functional.lstm    (eqs. 8-13)
    lstm_layer_step_*,          tinynet.accel.decoder_buffered (eqs. 8-14, one decoder step)
      output_row_*
    adam_update                 tinynet.optim.adam
    im2col, col2im              tinynet.functional.conv (eq. 5's columns)
    maxpool2d(_backward)        tinynet.functional.pool (eq. 6)
    clip_grad_norm, add_scaled  tinynet.optim.clip, tinynet.functional.losses (eq. 17)
    CounterRandom               tinynet.functional.dropout.counter_uniform
    gpu_matmul, matmul          numpy's a @ b: cuBLAS called directly (accel.gpu.blas),
                                else tinynet's GEMM kernel inside a capture
                                (tinynet.functional.matmul)

The LSTM and Adam kernels are cupy.ElementwiseKernels (the LSTM ones over the (N, H) cell
positions), generic in the float type T; the (N, 4H) gate arrays are `raw` arguments
indexed by hand, because one position reads and writes four gates. The decoder's step
kernels and the matrix product are templated RawModule kernels (see their comments below).
Their CUDA C is in cuda/, declared in sources.
The kernels are built on first use and memoized (CuPy then compiles and caches the machine
code per dtype). Constants are cast to T so that float32 stays float32.

Nothing here synchronises with the host or allocates outside CuPy's memory pool, so the
kernels can be captured in a CUDA graph (tinynet.accel.gpu.graph).
"""

import functools

import cupy
import numpy as np

from ...shapes import output_size
from . import blas, sources
from .sources import FLOAT_TYPES

# Every kernel's CUDA lives in cuda/, and sources declares each kernel (the compile test
# compiles the same declarations): the elementwise kernels' bodies are the functions of
# cuda/elementwise.cuh, after the cell of eqs. (8)-(13) in cuda/cell.cuh, which the fused
# decoder kernels share; the RawModules are named by their key in sources.RAW_SOURCES.


@functools.lru_cache(maxsize=None)
def _elementwise_kernel(kernel):
    return cupy.ElementwiseKernel(*kernel, preamble=sources.ELEMENTWISE_PREAMBLE)


@functools.lru_cache(maxsize=None)
def _reduction_kernel(kernel):
    return cupy.ReductionKernel(*kernel)


@functools.lru_cache(maxsize=None)
def _raw_module(name):
    code, options, names = sources.RAW_SOURCES[name]
    return cupy.RawModule(code=code, options=options, name_expressions=names)


@functools.lru_cache(maxsize=None)
def _lstm_cell_forward_kernel(literal_eq13):
    return _elementwise_kernel(sources.lstm_cell_forward_kernel(literal_eq13))


@functools.lru_cache(maxsize=None)
def _lstm_cell_backward_kernel(literal_eq13):
    return _elementwise_kernel(sources.lstm_cell_backward_kernel(literal_eq13))


def clip_grad_norm(grads, max_norm):
    """tinynet.optim.clip_grad_norm for a list of arrays of one dtype: one reduction per
    gradient into a slot of one buffer, one for the norm, one scaling kernel per gradient."""
    dtype = grads[0].dtype
    squares = cupy.empty(len(grads), dtype=dtype)
    for slot, g in enumerate(grads):
        _reduction_kernel(sources.SUM_OF_SQUARES)(g, out=squares[slot])
    norm = _reduction_kernel(sources.NORM)(squares)
    for g in grads:
        _elementwise_kernel(sources.CLIP)(norm, dtype.type(max_norm), g)
    return norm


def add_scaled(y, x, scale):
    """y += scale x in place, in one kernel (tinynet.functional.losses.add_l2_gradients)."""
    _elementwise_kernel(sources.ADD_SCALED)(x, y.dtype.type(scale), y)


def lstm_cell_forward(gates, c_prev, literal_eq13):
    """gates: (N, 4H) pre-activations, overwritten by the activated gates; c_prev (N, H).

    Returns h, c, tanh(c), each (N, H).
    """
    h, c, tanh_c = (cupy.empty(c_prev.shape, dtype=c_prev.dtype) for _ in range(3))
    _lstm_cell_forward_kernel(bool(literal_eq13))(c_prev, c_prev.shape[1], gates, h, c, tanh_c)
    return h, c, tanh_c


def lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, literal_eq13, da):
    """dh, dc: (N, H); gates (N, 4H) activated, c_prev and tanh_c (N, H) from the forward.

    Writes the pre-activation gradient into da (N, 4H); returns da and dc_prev (N, H).
    """
    dc_prev = cupy.empty(c_prev.shape, dtype=c_prev.dtype)
    _lstm_cell_backward_kernel(bool(literal_eq13))(dh, dc, gates, c_prev, tanh_c, c_prev.shape[1], da, dc_prev)
    return da, dc_prev


def adam_update(param, grad, m, v, beta1, beta2, step, eps_hat):
    """In place: m, v <- running moments; param -= step m / (sqrt(v) + eps_hat).

    step and eps_hat may be Python floats or 0-d device arrays of the parameter's dtype; the
    latter keep a captured CUDA graph valid from one step to the next (their values change
    every step, a Python float would be frozen into the graph).
    """
    _elementwise_kernel(sources.ADAM_UPDATE)(grad, beta1, beta2, 1 - beta1, 1 - beta2, step, eps_hat, param, m, v)


# ---- convolution columns and max pooling (tinynet.functional.conv, tinynet.functional.pool) ----
# One block per image plane, its threads a 2-D tile over the plane's rows and columns (so
# no thread divides an index per element: integer division is dozens of instructions on a
# GPU, and the columns of one conv2 step are 16 million elements). Each thread computes
# the elements it owns by reading what they need (a gather): col2im and the pooling
# backward add a pixel's contributions in the order of their NumPy twins' loops (kernel
# offset i, then j), so no two threads write one element and no atomics are needed.


@functools.lru_cache(maxsize=None)
def _image_kernel(name, dtype):
    return _raw_module("images").get_function(f"{name}<{FLOAT_TYPES[dtype]}>")


def _plane_launch(name, dtype, images, planes, height, width, args):
    """One block per (image, plane), its threads a tile of up to 256 over (height, width)."""
    tile_width = min(width, 32)
    tile = (tile_width, max(1, min(height, 256 // tile_width)), 1)
    _image_kernel(name, dtype)((images, planes), tile, tuple(
        a if isinstance(a, cupy.ndarray) else np.int32(a) for a in args))


def im2col(x, kh, kw, stride, pad):
    """x: (N, C, H, W) -> cols (C*kh*kw, N*Ho*Wo), row (c, i, j), column (n, h, w); pads with 0."""
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    cols = cupy.empty((C * kh * kw, N * Ho * Wo), dtype=x.dtype)
    _plane_launch("tinynet_im2col", x.dtype, N, C * kh * kw, Ho, Wo,
                  (cupy.ascontiguousarray(x), cols, N, C, H, W, kh, kw, stride, pad, Ho, Wo))
    return cols


def col2im(cols, x_shape, kh, kw, stride, pad):
    """Adjoint of im2col: cols (C*kh*kw, N*Ho*Wo) -> dx (N, C, H, W), summing overlapping windows."""
    N, C, H, W = x_shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    dx = cupy.empty(x_shape, dtype=cols.dtype)
    _plane_launch("tinynet_col2im", cols.dtype, N, C, H, W,
                  (cupy.ascontiguousarray(cols), dx, N, C, H, W, kh, kw, stride, pad, Ho, Wo))
    return dx


def maxpool2d(x, size, stride):
    """x: (N, C, H, W) -> y (N, C, Ho, Wo) and winner (int16, offset p * size + q of each maximum)."""
    N, C, H, W = x.shape
    Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
    y, winner = cupy.empty((N, C, Ho, Wo), dtype=x.dtype), cupy.empty((N, C, Ho, Wo), dtype=cupy.int16)
    _plane_launch("tinynet_maxpool", x.dtype, N, C, Ho, Wo,
                  (cupy.ascontiguousarray(x), y, winner, C, H, W, size, stride, Ho, Wo))
    return y, winner


def maxpool2d_backward(dy, winner, x_shape, size, stride):
    """dy: (N, C, Ho, Wo) -> dx (N, C, H, W), each dy added to its window's arg-max."""
    N, C, H, W = x_shape
    _, _, Ho, Wo = dy.shape
    dx = cupy.empty(x_shape, dtype=dy.dtype)
    _plane_launch("tinynet_maxpool_backward", dy.dtype, N, C, H, W,
                  (cupy.ascontiguousarray(dy), cupy.ascontiguousarray(winner), dx, C, H, W, size, stride, Ho, Wo))
    return dx


class CounterRandom:
    """Dropout's random numbers on the GPU: float32 uniforms that hash (seed, draw number,
    element index), one kernel per draw, the twin of tinynet.functional.dropout.counter_uniform.

    The seed sits in a device array that `reseed` overwrites in place, and the draw number
    restarts at 0: a training step captured in a CUDA graph after a reseed replays the same
    sequence of draws, each reading the seed of the latest reseed.
    """

    def __init__(self, seed):
        self.seed_buffer = cupy.zeros(1, dtype=cupy.uint32)
        self.reseed(seed)

    def reseed(self, seed):
        self.seed_buffer.fill(seed & 0xFFFFFFFF)
        self.draws = 0

    def random(self, shape, dtype="float32"):
        if cupy.dtype(dtype) != cupy.float32:
            raise ValueError(f"CounterRandom draws float32 only, not {dtype}")
        u = cupy.empty(shape, dtype=cupy.float32)
        _elementwise_kernel(sources.COUNTER_UNIFORM)(self.seed_buffer, self.draws, u)
        self.draws += 1
        return u


# Matrix product. CuPy refuses to call cuBLAS while a stream is being captured into a CUDA
# graph ("calling cuBLAS API during stream capture is currently unsupported", CuPy 13 and
# 14); where cuBLAS cannot be called through its C API instead (accel.gpu.blas: CUDA
# older than 12.2, ROCm), a captured step multiplies with this kernel. Each block of 16 x 16
# threads computes a TILE x TILE tile of C, each thread R x R of its entries, from tiles of
# A and B staged in shared memory TK columns at a time. A and B are read through their
# strides (a transposed view costs no copy); the loads run along whichever axis is
# contiguous, so they coalesce. When the tiles of C are too few to fill the GPU, the K
# axis is split over blockIdx.z: each split writes its partial product to its own slice
# of C, and the slices are summed afterwards (deterministic, no atomics).
_GEMM_TK = 16


@functools.lru_cache(maxsize=None)
def _gemm_kernel(dtype, tile):
    return _raw_module("gemm").get_function(sources.gemm_name(FLOAT_TYPES[dtype], tile))


@functools.lru_cache(maxsize=None)
def _multiprocessors(device_id):
    return cupy.cuda.Device(device_id).attributes["MultiProcessorCount"]


def gemm_plan(M, N, K, multiprocessors):
    """(tile, splits, k_chunk) for K >= 1: 64-wide tiles when they fill the GPU, else 32-wide;
    K cut in `splits` chunks of k_chunk (a multiple of 16, at least 256 unless K is smaller)
    until there are about two blocks per multiprocessor."""
    tile = 64 if -(-M // 64) * -(-N // 64) >= multiprocessors else 32
    blocks = -(-M // tile) * -(-N // tile)
    splits = max(1, min(K // 256, -(-2 * multiprocessors // blocks)))
    k_chunk = -(-(-(-K // splits)) // _GEMM_TK) * _GEMM_TK
    return tile, -(-K // k_chunk), k_chunk


def gpu_matmul(a, b):
    """a @ b on the GPU: cuBLAS through its C API with a handle per stream (blas), the
    same call eagerly, inside a CUDA graph capture and on a side stream; where that is not
    possible, CuPy's product, or inside a capture tinynet's GEMM kernel."""
    product = blas.gemm(a, b) if a.shape[1] > 0 else None
    if product is not None:
        return product
    return matmul(a, b) if cupy.cuda.get_current_stream().is_capturing() else a @ b


def matmul(a, b):
    """a @ b for 2-D float32 or float64 CuPy arrays of one dtype -> a new C-contiguous (M, N) array."""
    M, K = a.shape
    N = b.shape[1]
    out = cupy.empty((M, N), dtype=a.dtype)
    if M == 0 or N == 0:
        return out
    if K == 0:
        out.fill(0)
        return out
    tile, splits, k_chunk = gemm_plan(M, N, K, _multiprocessors(a.device.id))
    partial = out if splits == 1 else cupy.empty((splits, M, N), dtype=a.dtype)
    itemsize = a.itemsize
    sam, sak = (s // itemsize for s in a.strides)
    sbk, sbn = (s // itemsize for s in b.strides)
    grid = (-(-N // tile), -(-M // tile), splits)
    _gemm_kernel(a.dtype, tile)(grid, (16, 16, 1), (
        a, b, partial, np.int32(M), np.int32(N), np.int32(K), np.int32(k_chunk),
        np.int64(sam), np.int64(sak), np.int64(sbk), np.int64(sbn)))
    if splits > 1:
        cupy.sum(partial, axis=0, out=out)
    return out


# The decoder's steps (tinynet.accel.decoder_buffered), one kernel each. They are small
# products (100 rows, K = 257 or 512) whose latency, not their arithmetic, is the cost, so
# every kernel splits its sum over K between the SLICES rows of threads of a block (fewer
# dependent loads per thread), then adds the slices' partial sums in shared memory.
# A layer's step: block (32 units, SLICES), ROWS batch rows; a thread accumulates the four
# gates of its unit over its slice of K (the input loads are broadcasts within a warp, the
# weight loads coalesce), and the cell of eqs. (8)-(13) is the epilogue. Its backward: the
# block first computes the cell's backward for its ROWS rows into shared memory (block
# column 0 alone writes da and dc_prev), then multiplies it by the transposed weights, 32
# columns per block. The output row of eq. (14): one block per batch row. Views with unit
# column stride are read and written through their row stride ("_ld").
# The block shapes (sources.FORWARD_SLICES and the rest) are compiled into the kernels' names.
_SHARED_LIMIT = 48 * 1024


@functools.lru_cache(maxsize=None)
def _decoder_kernel(index, dtype):
    return _raw_module("decoder").get_function(sources.DECODER_KERNELS[index].format(t=FLOAT_TYPES[dtype]))


def _row_stride(a):
    """The row stride of a 2-D view, in elements; its columns must be adjacent."""
    if a.ndim != 2 or (a.shape[1] > 1 and a.strides[1] != a.itemsize):
        raise ValueError(f"expected a 2-D view with adjacent columns, got shape {a.shape} strides {a.strides}")
    return np.int64(a.strides[0] // a.itemsize)


def lstm_layer_step_forward(step_input, W, c_prev, a_fixed, mask, h_out, up_out, literal_eq13):
    """tinynet.accel.decoder_buffered.lstm_layer_step_forward in one kernel (C-contiguous
    step_input and W; every array of one dtype). Returns c and the cell's cache."""
    N, K = step_input.shape
    H = c_prev.shape[1]
    dtype = step_input.dtype
    c_prev = cupy.ascontiguousarray(c_prev)
    a_fixed = None if a_fixed is None else cupy.ascontiguousarray(a_fixed)
    mask = None if mask is None else cupy.ascontiguousarray(mask)
    gates = cupy.empty((N, 4 * H), dtype=dtype)
    c, tanh_c = cupy.empty((N, H), dtype=dtype), cupy.empty((N, H), dtype=dtype)
    grid = (-(-H // 32), -(-N // sources.FORWARD_ROWS), 1)
    _decoder_kernel(0, dtype)(grid, (32, sources.FORWARD_SLICES, 1), (
        step_input, np.int32(K), W, c_prev if a_fixed is None else a_fixed, c_prev,
        c_prev if mask is None else mask, gates, c, tanh_c,
        up_out if h_out is None else h_out, np.int64(0) if h_out is None else _row_stride(h_out),
        up_out, _row_stride(up_out), np.int32(N), np.int32(H), np.int32(a_fixed is not None),
        np.int32(mask is not None), np.int32(h_out is not None), np.int32(bool(literal_eq13))))
    return c, (gates, c_prev, tanh_c, literal_eq13)


def fits_layer_step_backward(d_up):
    """Whether the backward kernel's shared memory holds a block's rows of gate gradients."""
    return _backward_shared_bytes(d_up.shape[1], d_up.itemsize) <= _SHARED_LIMIT


def _backward_shared_bytes(H, itemsize):
    return (sources.BACKWARD_SLICES * sources.BACKWARD_ROWS * 32 + sources.BACKWARD_ROWS * 4 * H) * itemsize


def lstm_layer_step_backward(d_up, mask, dh_next, dc_next, cache, W_input_T, da_out):
    """tinynet.accel.decoder_buffered.lstm_layer_step_backward in one kernel (C-contiguous
    W_input_T, da_out and cached gates; every array of one dtype). Returns d_input and dc_prev."""
    gates, c_prev, tanh_c, literal_eq13 = cache
    N, H = d_up.shape
    J = W_input_T.shape[1]
    dtype = d_up.dtype
    c_prev, tanh_c = cupy.ascontiguousarray(c_prev), cupy.ascontiguousarray(tanh_c)
    mask = None if mask is None else cupy.ascontiguousarray(mask)
    dc_next = cupy.ascontiguousarray(dc_next)
    dc_prev = cupy.empty((N, H), dtype=dtype)
    d_input = cupy.empty((N, J), dtype=dtype)
    grid = (-(-N // sources.BACKWARD_ROWS), -(-J // 32), 1)
    _decoder_kernel(1, dtype)(grid, (32, sources.BACKWARD_SLICES, 1), (
        d_up, _row_stride(d_up), dc_next if mask is None else mask, dh_next, _row_stride(dh_next), dc_next,
        gates, c_prev, tanh_c, W_input_T, np.int32(J), da_out, dc_prev, d_input,
        np.int32(N), np.int32(H), np.int32(mask is not None), np.int32(bool(literal_eq13))),
        shared_mem=_backward_shared_bytes(H, d_up.itemsize))
    return d_input, dc_prev


def output_row_forward(top, W, b, y_out, feedback_out):
    """tinynet.accel.decoder_buffered.output_row_forward in one kernel (C-contiguous top and
    y_out; every array of one dtype)."""
    N, H = top.shape
    D = W.shape[1]
    W, b = cupy.ascontiguousarray(W), cupy.ascontiguousarray(b)
    _decoder_kernel(2, top.dtype)((N, 1, 1), (32, sources.OUTPUT_SLICES, 1), (
        top, W, b, y_out, y_out if feedback_out is None else feedback_out,
        np.int64(0) if feedback_out is None else _row_stride(feedback_out),
        np.int32(N), np.int32(H), np.int32(D), np.int32(feedback_out is not None)))


def output_row_backward(dy, dy_fed_back, y, W, dz_out):
    """tinynet.accel.decoder_buffered.output_row_backward in one kernel (C-contiguous y, W and
    dz_out; every array of one dtype). Returns the gradient w.r.t. top (N, H)."""
    N, D = y.shape
    H = W.shape[0]
    d_top = cupy.empty((N, H), dtype=y.dtype)
    _decoder_kernel(3, y.dtype)((-(-N * H // 128), 1, 1), (128, 1, 1), (
        dy, _row_stride(dy), dy_fed_back, _row_stride(dy_fed_back), y, W, dz_out, d_top,
        np.int32(N), np.int32(H), np.int32(D)))
    return d_top
