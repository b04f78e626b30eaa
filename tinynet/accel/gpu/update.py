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
weights, with or without an average) and memoized; a model has one layout. The kernels are
cuda/update_chunks.cuh and cuda/update.cu, after a header of the layout
(sources.update_source).
"""

import functools

import cupy

from .sources import THREADS, UPDATE_KERNELS, UPDATE_OPTIONS, chunk_layout, update_source


@functools.lru_cache(maxsize=None)
def _update_module(dtype, sizes, weights, with_average):
    return cupy.RawModule(code=update_source(dtype, sizes, weights, with_average), options=UPDATE_OPTIONS)


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
    squares_kernel, apply_kernel = (module.get_function(name) for name in UPDATE_KERNELS)
    _, chunks = chunk_layout(sizes)
    partials = cupy.empty(chunks, dtype=dtype)
    scalar = dtype.type
    squares_args = [a for g, p in zip(grads, params) for a in (g, p)]
    squares_kernel((chunks,), (THREADS,), (partials, scalar(2 * l2), *squares_args))
    per_tensor = zip(grads, params, m, v, averages if averages is not None else [None] * len(params))
    apply_args = [a for arrays in per_tensor for a in arrays if a is not None]
    rate = average_rate if averages is not None else adam_scalars  # an unread pointer without an average
    apply_kernel(
        (chunks,), (THREADS,),
        (partials, scalar(2 * l2), scalar(max_norm), scalar(beta1), scalar(beta2), scalar(1 - beta1), scalar(1 - beta2),
         adam_scalars, rate, *apply_args))
