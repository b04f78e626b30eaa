"""One training step's parameter update on the GPU in two kernels over every parameter:
eq. (17)'s gradient, clipping by global norm, Adam and the weight average.

tinynet.optim.update_parameters computes, one function after another, what these two
kernels compute together (its plain path is their reference twin):

    g <- g + 2 lam w             (weights only; tinynet.functional.losses.add_l2_gradients)
    g <- g min(1, c / (|g| + 1e-6))    (tinynet.optim.clip_grad_norm, |g| over all tensors)
    m, v, w <- Adam's step        (tinynet.optim.Adam)
    a <- a + rate (w - a)         (tinynet.optim.WeightAverage)

Called one tensor at a time, that is about six kernels per parameter tensor, 150 for the
CNN-LSTM's 25 tensors, each a few microseconds of launch and tail for a few thousand
numbers. Here the tensors are cut into chunks of CHUNK numbers, one block per chunk: the
first kernel writes each chunk's sum of squares of g + 2 lam w, the second has every block
add those partial sums up (in the same order, so every block gets the same norm) and then
update its chunk. The parameters' device addresses are the kernels' arguments and their
sizes are compiled in, so a module is built per layout (dtype, sizes, which tensors are
weights, with or without an average) and memoized; a model has one layout.
"""

import functools

import cupy
import numpy as np

from . import cuda_source

THREADS = 256
CHUNK = THREADS * 8

_TYPE_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_CHUNK_FUNCTIONS = cuda_source("update_chunks.cuh")

_KERNELS = """
extern "C" __global__ void tinynet_update_squares(T* partials, const T l2_twice{squares_args}) {{
    __shared__ T shared[32];
    const long long chunk = blockIdx.x;
{squares_dispatch}
}}

// adam_scalars: Adam's (step, eps_hat); average_rate: the average's rate (unread without one)
extern "C" __global__ void tinynet_update_apply(const T* partials, const T l2_twice, const T max_norm,
        const T beta1, const T beta2, const T one_minus_beta1, const T one_minus_beta2, const T* adam_scalars,
        const T* average_rate{apply_args}) {{
    __shared__ T shared[32];
    T total = T(0);
    for (int j = threadIdx.x; j < {chunks}; j += blockDim.x) total += partials[j];
    const T norm = sqrt(block_sum(total, shared));
    Step s;
    s.clip_scale = min(T(1), max_norm / (norm + T(1e-6)));
    s.beta1 = beta1;
    s.beta2 = beta2;
    s.one_minus_beta1 = one_minus_beta1;
    s.one_minus_beta2 = one_minus_beta2;
    s.step = adam_scalars[0];
    s.eps_hat = adam_scalars[1];
    s.rate = {rate};
    const long long chunk = blockIdx.x;
{apply_dispatch}
}}
"""


def chunk_layout(sizes):
    """The first chunk of each tensor and the number of chunks: tensor i owns the chunks
    first[i] .. first[i + 1] - 1, each tensor starting a chunk of its own."""
    first, chunks = [], 0
    for size in sizes:
        first.append(chunks)
        chunks += -(-size // CHUNK)
    return tuple(first), chunks


def update_source(dtype, sizes, weights, with_average):
    """The CUDA source of the two kernels for tensors of `sizes` (`weights[i]`: tensor i gets
    eq. 17's term)."""
    first, chunks = chunk_layout(sizes)
    squares_args, apply_args, squares_dispatch, apply_dispatch = [], [], [], []
    for i, (start, size, weight) in enumerate(zip(first, sizes, weights)):
        end = start + -(-size // CHUNK)
        l2 = "l2_twice" if weight else "T(0)"
        begin = f"(chunk - {start}) * CHUNK"
        squares_args.append(f"const T* g{i}, const T* p{i}")
        apply_args.append(f"T* g{i}, T* p{i}, T* m{i}, T* v{i}" + (f", T* a{i}" if with_average else ""))
        test = f"    {'if' if i == 0 else 'else if'} (chunk < {end})"
        squares_dispatch.append(f"{test} chunk_squares(g{i}, p{i}, {size}LL, {begin}, {l2}, partials + chunk, shared);")
        average = f"a{i}" if with_average else "nullptr"
        apply_dispatch.append(f"{test} chunk_update(p{i}, g{i}, m{i}, v{i}, {average}, {size}LL, {begin}, {l2}, s);")
    header = f"typedef {_TYPE_NAMES[np.dtype(dtype)]} T;\nconst long long CHUNK = {CHUNK};\n"
    return header + _CHUNK_FUNCTIONS + _KERNELS.format(
        squares_args="".join(", " + a for a in squares_args), apply_args="".join(", " + a for a in apply_args),
        squares_dispatch="\n".join(squares_dispatch), apply_dispatch="\n".join(apply_dispatch), chunks=chunks,
        rate="average_rate[0]" if with_average else "T(0)")


@functools.lru_cache(maxsize=None)
def _update_module(dtype, sizes, weights, with_average):
    return cupy.RawModule(code=update_source(dtype, sizes, weights, with_average))


def update_all(params, grads, weights, m, v, averages, l2, max_norm, beta1, beta2, adam_scalars, average_rate):
    """tinynet.optim.update_parameters for Adam on the GPU, in two kernels (see the module).

    params, grads, m, v: lists of C-contiguous arrays of one dtype, tensor by tensor (grads
    are left clipped, with eq. 17's term, as the plain path leaves them); weights: a bool
    per tensor, True where eq. (17) applies; averages: the weight average's arrays, or None;
    adam_scalars: device array (step, eps_hat) of Adam's `keep_scalars_on_device`;
    average_rate: the average's 0-d device rate (unused without averages).
    """
    dtype = params[0].dtype
    sizes = tuple(int(p.size) for p in params)
    module = _update_module(dtype, sizes, tuple(bool(w) for w in weights), averages is not None)
    _, chunks = chunk_layout(sizes)
    partials = cupy.empty(chunks, dtype=dtype)
    scalar = dtype.type
    squares_args = [a for g, p in zip(grads, params) for a in (g, p)]
    module.get_function("tinynet_update_squares")((chunks,), (THREADS,), (partials, scalar(2 * l2), *squares_args))
    per_tensor = zip(grads, params, m, v, averages if averages is not None else [None] * len(params))
    apply_args = [a for arrays in per_tensor for a in arrays if a is not None]
    rate = average_rate if averages is not None else adam_scalars  # an unread pointer without an average
    module.get_function("tinynet_update_apply")(
        (chunks,), (THREADS,),
        (partials, scalar(2 * l2), scalar(max_norm), scalar(beta1), scalar(beta2), scalar(1 - beta1), scalar(1 - beta2),
         adam_scalars, rate, *apply_args))
