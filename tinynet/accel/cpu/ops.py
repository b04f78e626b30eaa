"""The CPU twins with their references' signatures: what the Numba kernels need of their
arguments, then the kernels (numba_kernels, numba_gemm). Listed in tinynet.accel.TWINS."""

import numpy as np

from ...negligible import negligible_below
from ..cell_and_pool import CellAndPoolTwins
from . import numba_gemm
from . import numba_kernels as kernels


def matmul(a, b):
    """tinynet.functional.matmul.matmul for 2-D float32 arrays."""
    if a.ndim != 2 or b.ndim != 2:
        return NotImplemented
    return numba_gemm.matmul(a, b)


_cell_and_pool = CellAndPoolTwins(kernels, np)
maxpool2d_forward = _cell_and_pool.maxpool2d_forward
maxpool2d_backward = _cell_and_pool.maxpool2d_backward
lstm_cell_forward_over_input = _cell_and_pool.lstm_cell_forward_over_input
lstm_cell_forward = _cell_and_pool.lstm_cell_forward
lstm_cell_backward_into = _cell_and_pool.lstm_cell_backward_into
lstm_cell_backward = _cell_and_pool.lstm_cell_backward


def adam_update(param, grad, m, v, beta1, beta2, step, eps_hat):
    """tinynet.optim.adam.adam_update, for C-contiguous arrays."""
    if not all(a.flags.c_contiguous for a in (param, grad, m, v)):
        return NotImplemented
    kernels.adam_update(param, grad, m, v, beta1, beta2, step, eps_hat)


def flush_negligible(array):
    """tinynet.negligible.flush_negligible, for a C-contiguous array."""
    if not array.flags.c_contiguous:
        return NotImplemented
    kernels.flush_negligible(array, negligible_below(array.dtype))
