"""Every piece of CUDA that tinynet.accel.gpu compiles, and how: each cupy.RawModule's code,
NVRTC options and name expressions, each cupy.ElementwiseKernel's and ReductionKernel's
declaration, and the parameter update's source for a layout. The device code itself lives in
cuda/; this module only reads it and declares the kernels, without CuPy, so that
tests/test_cuda_compile.py compiles exactly what fused.py and update.py compile, with NVRTC,
on machines without a GPU.
"""

from typing import NamedTuple

import numpy as np

from . import cuda_source

FLOAT_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
RAW_OPTIONS = ("-std=c++14",)


class RawSource(NamedTuple):
    """A cupy.RawModule's arguments. name_expressions: the template instances that
    get_function looks up (NVRTC instantiates them), one per kernel and float type."""

    code: str
    options: tuple
    name_expressions: tuple


class Elementwise(NamedTuple):
    """A cupy.ElementwiseKernel's arguments (all of them take ELEMENTWISE_PREAMBLE): the
    operation is one call of a function of cuda/elementwise.cuh."""

    in_params: str
    out_params: str
    operation: str
    name: str


class Reduction(NamedTuple):
    """A cupy.ReductionKernel's arguments, in its order: each input element mapped by
    map_expr, the results combined by reduce_expr from identity, the total `a` written by
    post_map_expr."""

    in_params: str
    out_params: str
    map_expr: str
    reduce_expr: str
    post_map_expr: str
    identity: str
    name: str


# The cell of eqs. (8)-(13) at one position (n, k), shared by the elementwise cell kernels
# and the fused decoder kernels. sigmoid(a) = (tanh(a / 2) + 1) / 2, as in the NumPy and
# Numba twins. The forward turns the four pre-activations into the activated gates in place.
NEGLIGIBLE_FUNCTIONS = cuda_source("negligible.cuh")
CELL_FUNCTIONS = NEGLIGIBLE_FUNCTIONS + cuda_source("cell.cuh")

# ---- the elementwise and reduction kernels (fused.py) ----
ELEMENTWISE_PREAMBLE = CELL_FUNCTIONS + cuda_source("elementwise.cuh")


def lstm_cell_forward_kernel(literal_eq13):
    """Eqs. (8)-(13) over the (N, H) cell positions; the (N, 4H) gates, read and written at
    four places per position, are a raw argument."""
    return Elementwise(
        "T c_prev, int64 H", "raw T gates, T h, T c, T tanh_c",
        f"lstm_cell_forward_elementwise(i, c_prev, H, {str(bool(literal_eq13)).lower()}, gates, h, c, tanh_c)",
        "tinynet_lstm_cell_forward_literal" if literal_eq13 else "tinynet_lstm_cell_forward")


def lstm_cell_backward_kernel(literal_eq13):
    """The cell's backward over the (N, H) positions, into the raw (N, 4H) gate gradients."""
    return Elementwise(
        "T dh, T dc, raw T gates, T c_prev, T tanh_c, int64 H", "raw T da, T dc_prev",
        f"lstm_cell_backward_elementwise(i, dh, dc, gates, c_prev, tanh_c, H, {str(bool(literal_eq13)).lower()}, "
        "da, dc_prev)",
        "tinynet_lstm_cell_backward_literal" if literal_eq13 else "tinynet_lstm_cell_backward")


ADAM_UPDATE = Elementwise(
    "T grad, T beta1, T beta2, T one_minus_beta1, T one_minus_beta2, T step, T eps_hat", "T param, T m, T v",
    "adam_update_elementwise(grad, beta1, beta2, one_minus_beta1, one_minus_beta2, step, eps_hat, param, m, v)",
    "tinynet_adam_update")
CLIP = Elementwise("T norm, T max_norm", "T grad", "clip_elementwise(norm, max_norm, grad)", "tinynet_clip")
ADD_SCALED = Elementwise("T x, T scale", "T y", "add_scaled_elementwise(x, scale, y)", "tinynet_add_scaled")
COUNTER_UNIFORM = Elementwise("raw uint32 seed, uint32 draw", "float32 u",
                              "u = counter_uniform_elementwise(i, seed[0], draw)", "tinynet_counter_uniform")
ELEMENTWISE = (lstm_cell_forward_kernel(False), lstm_cell_forward_kernel(True), lstm_cell_backward_kernel(False),
               lstm_cell_backward_kernel(True), ADAM_UPDATE, CLIP, ADD_SCALED, COUNTER_UNIFORM)

# clip_grad_norm's sums: the squares of one gradient, then the norm of all of them
SUM_OF_SQUARES = Reduction("T x", "T total", "x * x", "a + b", "total = a", "0", "tinynet_sum_of_squares")
NORM = Reduction("T squares", "T norm", "squares", "a + b", "norm = sqrt(a)", "0", "tinynet_norm")
REDUCTIONS = (SUM_OF_SQUARES, NORM)

# ---- the RawModules (fused.py) ----
IMAGE_KERNELS = ("tinynet_im2col", "tinynet_col2im", "tinynet_maxpool", "tinynet_maxpool_backward")
IMAGES = RawSource(cuda_source("images.cu"), RAW_OPTIONS,
                   tuple(f"{kernel}<{t}>" for t in FLOAT_TYPES.values() for kernel in IMAGE_KERNELS))

GEMM_TILES = (32, 64)


def gemm_name(float_type, tile):
    """The template instance of tinynet's GEMM kernel for C type `float_type` and `tile`."""
    return f"tinynet_gemm<{float_type},{tile}>"


GEMM = RawSource(cuda_source("gemm.cu"), RAW_OPTIONS,
                 tuple(gemm_name(t, tile) for t in FLOAT_TYPES.values() for tile in GEMM_TILES))

# (K slices, batch rows) per block of the decoder's step kernels: the fastest shapes for the
# training step's sizes (batch 100, hidden 128) timed in a CUDA graph by bench/graph_parts.py
# (bench/RESULTS.md)
FORWARD_SLICES, FORWARD_ROWS = 8, 4
BACKWARD_SLICES, BACKWARD_ROWS = 8, 2
OUTPUT_SLICES = 8
DECODER_KERNELS = (f"tinynet_lstm_layer_step<{{t}},{FORWARD_SLICES},{FORWARD_ROWS}>",
                   f"tinynet_lstm_layer_step_backward<{{t}},{BACKWARD_SLICES},{BACKWARD_ROWS}>",
                   f"tinynet_output_row<{{t}},{OUTPUT_SLICES}>", "tinynet_output_row_backward<{t}>")
DECODER = RawSource(CELL_FUNCTIONS + cuda_source("decoder.cu"), RAW_OPTIONS,
                    tuple(name.format(t=t) for t in FLOAT_TYPES.values() for name in DECODER_KERNELS))

RAW_SOURCES = {"images": IMAGES, "gemm": GEMM, "decoder": DECODER}

# ---- the parameter update (update.py) ----
THREADS = 256
CHUNK = THREADS * 8
UPDATE_KERNELS = ("tinynet_update_squares", "tinynet_update_apply")
UPDATE_OPTIONS = ()  # CuPy's defaults
_UPDATE_FUNCTIONS = NEGLIGIBLE_FUNCTIONS + cuda_source("update_chunks.cuh") + cuda_source("update.cu")


def chunk_layout(sizes):
    """The first chunk of each tensor and the number of chunks: tensor i owns the chunks
    first[i] .. first[i + 1] - 1, each tensor starting a chunk of its own."""
    first, chunks = [], 0
    for size in sizes:
        first.append(chunks)
        chunks += -(-size // CHUNK)
    return tuple(first), chunks


def update_layout_header(dtype, sizes, weights, with_average):
    """The definitions that cuda/update.cu reads (see its head) for tensors of `sizes`
    (`weights[i]`: tensor i gets eq. 17's term), with or without the weight average."""
    first, chunks = chunk_layout(sizes)
    tensors = [f"X({i}, {start}, {start + -(-size // CHUNK)}, {size}LL, {int(bool(weight))})"
               for i, (start, size, weight) in enumerate(zip(first, sizes, weights))]
    return (f"typedef {FLOAT_TYPES[np.dtype(dtype)]} T;\n"
            f"const long long CHUNK = {CHUNK};\n"
            f"#define CHUNKS {chunks}\n"
            f"#define WITH_AVERAGE {int(bool(with_average))}\n"
            "#define TENSORS(X)" + "".join(f" \\\n    {tensor}" for tensor in tensors) + "\n")


def update_source(dtype, sizes, weights, with_average):
    """The CUDA source of the update's two kernels for one layout (update_layout_header)."""
    return update_layout_header(dtype, sizes, weights, with_average) + _UPDATE_FUNCTIONS
