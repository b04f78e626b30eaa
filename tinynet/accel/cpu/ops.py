"""The CPU twins with their references' signatures: what the Numba kernels need of their
arguments, then the kernels (numba_kernels, numba_gemm). Listed in tinynet.accel.TWINS."""

import numpy as np

from . import numba_gemm
from . import numba_kernels as kernels


def matmul(a, b):
    """tinynet.functional.matmul.matmul for 2-D float32 arrays."""
    if a.ndim != 2 or b.ndim != 2:
        return NotImplemented
    return numba_gemm.matmul(a, b)


def maxpool2d_forward(x, size=2, stride=2):
    """tinynet.functional.pool.maxpool2d_forward."""
    y, winner = kernels.maxpool2d(x, size, stride)
    return y, (x.shape, winner, size, stride)


def maxpool2d_backward(dy, cache):
    """tinynet.functional.pool.maxpool2d_backward."""
    x_shape, winner, size, stride = cache
    return kernels.maxpool2d_backward(dy, winner, x_shape, size, stride), {}


def lstm_cell_forward_over_input(a, c_prev, literal_eq13=False):
    """lstm_cell_forward whose activated gates overwrite `a`, which becomes part of the cache."""
    h, c, tanh_c = kernels.lstm_cell_forward(a, c_prev, literal_eq13)
    return h, c, (a, c_prev, tanh_c, literal_eq13)


def lstm_cell_forward(a, c_prev, literal_eq13=False):
    """tinynet.functional.lstm.lstm_cell_forward."""
    return lstm_cell_forward_over_input(a.copy(), c_prev, literal_eq13)


def lstm_cell_backward_into(dh, dc, cache, da_out):
    """lstm_cell_backward writing da into da_out."""
    gates, c_prev, tanh_c, literal_eq13 = cache
    return kernels.lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, literal_eq13, da_out)


def lstm_cell_backward(dh, dc, cache):
    """tinynet.functional.lstm.lstm_cell_backward."""
    return lstm_cell_backward_into(dh, dc, cache, np.empty(cache[0].shape, dtype=cache[0].dtype))


def adam_update(param, grad, m, v, beta1, beta2, step, eps_hat):
    """tinynet.optim.adam.adam_update, for C-contiguous arrays."""
    if not all(a.flags.c_contiguous for a in (param, grad, m, v)):
        return NotImplemented
    kernels.adam_update(param, grad, m, v, beta1, beta2, step, eps_hat)
