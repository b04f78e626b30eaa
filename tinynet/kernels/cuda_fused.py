"""Fused CuPy kernels for the GPU: each computes what a plain twin in tinynet.functional or
tinynet.optim computes (and what the Numba kernel of numba_cpu computes, with the same
signature), in one kernel launch instead of a dozen elementwise ones and their temporaries.

    lstm_cell_forward/backward  tinynet.functional.lstm    (eqs. 8-13)
    adam_update                 tinynet.optim.adam
    CounterRandom               tinynet.functional.dropout.counter_uniform
    matmul                      numpy's a @ b (tinynet.functional.matmul)

The LSTM and Adam kernels are cupy.ElementwiseKernels (the LSTM ones over the (N, H) cell
positions), generic in the float type T; the (N, 4H) gate arrays are `raw` arguments
indexed by hand, because one position reads and writes four gates. The matrix product is a
templated RawModule kernel (see its comment below). The kernels are built on first use and
memoized (CuPy then compiles and caches the machine code per dtype). Constants are cast to
T so that float32 stays float32.

Nothing here synchronises with the host or allocates outside CuPy's memory pool, so the
kernels can be captured in a CUDA graph (tinynet.kernels.cuda_graph).
"""

import functools

import cupy
import numpy as np

# sigmoid(a) = (tanh(a / 2) + 1) / 2, as in the NumPy and Numba twins
_PREAMBLE = """
template <typename T> __device__ T sigmoid_by_tanh(T a) {
    const T half = (T)0.5;
    return half * tanh(half * a) + half;
}
"""

# `i` is CuPy's loop index over the (N, H) positions: row n = i / H, unit k = i % H. The
# gates of position (n, k) sit at n 4H + k + {0, 1, 2, 3} H (blocks i, f, g, o).
_GATE_OFFSETS = """
const ptrdiff_t at = (i / H) * 4 * H + i % H;
const ptrdiff_t at_i = at, at_f = at + H, at_g = at + 2 * H, at_o = at + 3 * H;
"""


@functools.lru_cache(maxsize=None)
def _lstm_cell_forward_kernel(literal_eq13):
    return cupy.ElementwiseKernel(
        "T c_prev, int64 H",
        "raw T gates, T h, T c, T tanh_c",
        _GATE_OFFSETS + f"""
        const T in_gate = sigmoid_by_tanh(gates[at_i]);       // (8)
        const T forget_gate = sigmoid_by_tanh(gates[at_f]);   // (9)
        const T new_state = tanh(gates[at_g]);                 // (11)
        const T out_gate = sigmoid_by_tanh(gates[at_o]);      // (10)
        gates[at_i] = in_gate;
        gates[at_f] = forget_gate;
        gates[at_g] = new_state;
        gates[at_o] = out_gate;
        c = forget_gate * c_prev + in_gate * new_state;       // (12)
        tanh_c = tanh(c);
        h = {"in_gate" if literal_eq13 else "out_gate"} * tanh_c;  // (13)
        """,
        "tinynet_lstm_cell_forward_literal" if literal_eq13 else "tinynet_lstm_cell_forward",
        preamble=_PREAMBLE,
    )


@functools.lru_cache(maxsize=None)
def _lstm_cell_backward_kernel(literal_eq13):
    # eq. (13), h = u tanh(c) with u = o (or i as printed); in the printed form the output
    # gate does not reach the loss and dh tanh(c) goes to the input gate instead
    d_gates = "d_i += dh * t; const T d_o = (T)0;" if literal_eq13 else "const T d_o = dh * t;"
    return cupy.ElementwiseKernel(
        "T dh, T dc, raw T gates, T c_prev, T tanh_c, int64 H",
        "raw T da, T dc_prev",
        _GATE_OFFSETS + f"""
        const T one = (T)1;
        const T in_gate = gates[at_i], forget_gate = gates[at_f];
        const T new_state = gates[at_g], out_gate = gates[at_o];
        const T t = tanh_c;
        // eq. (13): c_t gets dh's share too
        const T dc_total = dc + dh * {"in_gate" if literal_eq13 else "out_gate"} * (one - t * t);
        // eq. (12), c = f c_prev + i g; then eqs. (8)-(11): sigmoid' = s - s^2, tanh' = 1 - g^2
        T d_i = dc_total * new_state;
        {d_gates}
        da[at_i] = d_i * (in_gate - in_gate * in_gate);
        da[at_f] = dc_total * c_prev * (forget_gate - forget_gate * forget_gate);
        da[at_g] = dc_total * in_gate * (one - new_state * new_state);
        da[at_o] = d_o * (out_gate - out_gate * out_gate);
        dc_prev = dc_total * forget_gate;
        """,
        "tinynet_lstm_cell_backward_literal" if literal_eq13 else "tinynet_lstm_cell_backward",
    )


@functools.lru_cache(maxsize=None)
def _adam_update_kernel():
    return cupy.ElementwiseKernel(
        "T grad, T beta1, T beta2, T one_minus_beta1, T one_minus_beta2, T step, T eps_hat",
        "T param, T m, T v",
        """
        m = m * beta1 + one_minus_beta1 * grad;
        v = v * beta2 + one_minus_beta2 * (grad * grad);
        param -= step * m / (sqrt(v) + eps_hat);
        """,
        "tinynet_adam_update",
    )


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
    _adam_update_kernel()(grad, beta1, beta2, 1 - beta1, 1 - beta2, step, eps_hat, param, m, v)


@functools.lru_cache(maxsize=None)
def _counter_uniform_kernel():
    return cupy.ElementwiseKernel(
        "raw uint32 seed, uint32 draw",
        "float32 u",
        """
        const unsigned int key = mix32(seed[0] + 0x9E3779B9u * (draw + 1u));
        const unsigned int bits = mix32(mix32((unsigned int)i ^ key) + key);
        u = (float)(bits >> 8) * (1.0f / 16777216.0f);
        """,
        "tinynet_counter_uniform",
        preamble="""
        __device__ unsigned int mix32(unsigned int x) {  // 'lowbias32'
            x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
            return x;
        }
        """,
    )


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
        _counter_uniform_kernel()(self.seed_buffer, self.draws, u)
        self.draws += 1
        return u


# Matrix product. CuPy refuses to call cuBLAS while a stream is being captured into a CUDA
# graph ("calling cuBLAS API during stream capture is currently unsupported", CuPy 13 and
# 14), so tinynet multiplies with this kernel of its own on the GPU. Each block of 16 x 16
# threads computes a TILE x TILE tile of C, each thread R x R of its entries, from tiles of
# A and B staged in shared memory TK columns at a time. A and B are read through their
# strides (a transposed view costs no copy); the loads run along whichever axis is
# contiguous, so they coalesce. When the tiles of C are too few to fill the GPU, the K
# axis is split over blockIdx.z: each split writes its partial product to its own slice
# of C, and the slices are summed afterwards (deterministic, no atomics).
_GEMM_SOURCE = r"""
template <typename T, int TILE>
__global__ void tinynet_gemm(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C,
                             const int M, const int N, const int K, const int k_chunk,
                             const long long sam, const long long sak,
                             const long long sbk, const long long sbn) {
    constexpr int TK = 16, R = TILE / 16;
    __shared__ T As[TK][TILE + 1];
    __shared__ T Bs[TK][TILE + 1];
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int m0 = blockIdx.y * TILE, n0 = blockIdx.x * TILE;
    const int k_begin = blockIdx.z * k_chunk;
    const int k_end = min(K, k_begin + k_chunk);
    T acc[R][R];
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
        for (int j = 0; j < R; ++j) acc[i][j] = T(0);

    for (int k0 = k_begin; k0 < k_end; k0 += TK) {
        for (int e = tid; e < TILE * TK; e += 256) {
            int mm, kk;
            if (sak == 1) { mm = e / TK; kk = e % TK; } else { kk = e / TILE; mm = e % TILE; }
            const int m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < k_end) ? A[m * sam + k * sak] : T(0);
        }
        for (int e = tid; e < TILE * TK; e += 256) {
            int nn, kk;
            if (sbn == 1) { kk = e / TILE; nn = e % TILE; } else { nn = e / TK; kk = e % TK; }
            const int n = n0 + nn, k = k0 + kk;
            Bs[kk][nn] = (n < N && k < k_end) ? B[k * sbk + n * sbn] : T(0);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TK; ++kk) {
            T a[R], b[R];
#pragma unroll
            for (int i = 0; i < R; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < R; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < R; ++i)
#pragma unroll
                for (int j = 0; j < R; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    T* Cz = C + (size_t)blockIdx.z * M * N;
#pragma unroll
    for (int i = 0; i < R; ++i) {
        const int m = m0 + ty + 16 * i;
#pragma unroll
        for (int j = 0; j < R; ++j) {
            const int n = n0 + tx + 16 * j;
            if (m < M && n < N) Cz[(size_t)m * N + n] = acc[i][j];
        }
    }
}
"""
_GEMM_TYPES = {cupy.dtype(cupy.float32): "float", cupy.dtype(cupy.float64): "double"}
_GEMM_TK = 16


@functools.lru_cache(maxsize=None)
def _gemm_kernel(dtype, tile):
    names = [f"tinynet_gemm<{t},{s}>" for t in _GEMM_TYPES.values() for s in (32, 64)]
    module = _gemm_module(tuple(names))
    return module.get_function(f"tinynet_gemm<{_GEMM_TYPES[dtype]},{tile}>")


@functools.lru_cache(maxsize=None)
def _gemm_module(names):
    return cupy.RawModule(code=_GEMM_SOURCE, options=("-std=c++14",), name_expressions=names)


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
