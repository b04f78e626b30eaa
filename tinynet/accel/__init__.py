"""Optional accelerated twins of the reference (tinynet.functional, tinynet.optim).

Each twin computes what its reference computes (exactly, or to float rounding), with the
same arguments and results, only faster; tests/tinynet checks every pair. Calls reach the
twins only through tinynet.dispatch, which reads TWINS: for each @accelerated reference,
by name, its twins in order of preference as (accepts, "submodule:function"). `accepts`
sees the call's positional arguments; the submodule is imported when it first serves. A twin may
still decline a call by returning NotImplemented, and then the next one, or the reference,
runs. Delete this package and tinynet runs everything on its reference.

    cpu/numba_kernels  Numba kernels for float32/float64 NumPy arrays
    cpu/numba_gemm     float32 matrix product and column-free convolutions (AVX-512 CPUs)
    cpu/conv           the convolutions in cache-sized chunks, or without columns
    cpu/ops            the CPU twins with their references' signatures
    gpu/fused          fused CuPy kernels; gpu/blas cuBLAS called directly; gpu/update the
                       whole parameter update in two kernels; gpu/streams a second stream;
                       gpu/graph a training step captured in a CUDA graph (used by callers
                       directly, not through TWINS)
    gpu/ops            the GPU twins with their references' signatures
    decoder_buffered   the decoder with stacked weights and time-major buffers (any device)
    cell_and_pool      the max-pool and LSTM-cell twins over either device's kernels
"""

import functools

import numpy as np

from ..backend import is_gpu_array

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _arrays(args):
    """The array arguments among `args`, and the arrays of dict arguments (not those in
    tuples: a cache holds integer arrays too)."""
    arrays = []
    for arg in args:
        if type(arg) is np.ndarray or is_gpu_array(arg):
            arrays.append(arg)
        elif isinstance(arg, dict):
            arrays.extend(a for a in arg.values() if type(a) is np.ndarray or is_gpu_array(a))
    return arrays


def numpy_float(*args):
    """Every array argument a float32 or float64 NumPy array (so not the long double arrays
    of the gradient checks), and at least one."""
    arrays = _arrays(args)
    return bool(arrays) and all(type(a) is np.ndarray and a.dtype in FLOAT_DTYPES for a in arrays)


@functools.lru_cache(maxsize=None)
def _cpu_has_avx512():
    from .cpu.numba_gemm import USEFUL

    return USEFUL


def numpy_float32_on_avx512(*args):
    """Every array argument a float32 NumPy array, on a CPU with AVX-512 (elsewhere NumPy's
    BLAS is as fast as tinynet's own product)."""
    arrays = _arrays(args)
    return (bool(arrays) and all(type(a) is np.ndarray and a.dtype == np.float32 for a in arrays)
            and _cpu_has_avx512())


def cupy_float(*args):
    """Every array argument a float32 or float64 CuPy array, and at least one."""
    arrays = _arrays(args)
    return bool(arrays) and all(is_gpu_array(a) and a.dtype in FLOAT_DTYPES for a in arrays)


def cupy_one_dtype(*args):
    """cupy_float, and all of one dtype (the templated kernels take a single T)."""
    return cupy_float(*args) and len({a.dtype for a in _arrays(args)}) == 1


def float_arrays(*args):
    """numpy_float or cupy_float."""
    return numpy_float(*args) or cupy_float(*args)


def cupy_module(xp, *args):
    """The array module argument is CuPy."""
    return xp is not np


def always(*args):
    return True


TWINS = {
    # tinynet.functional
    "matmul.matmul": [(numpy_float32_on_avx512, "cpu.ops:matmul"), (cupy_float, "gpu.ops:matmul")],
    "conv.im2col": [(numpy_float, "cpu.numba_kernels:im2col"), (cupy_float, "gpu.fused:im2col")],
    "conv.col2im": [(numpy_float, "cpu.numba_kernels:col2im"), (cupy_float, "gpu.fused:col2im")],
    "conv.conv2d_forward": [(numpy_float, "cpu.conv:conv2d_forward")],
    "conv.conv2d_backward": [(numpy_float, "cpu.conv:conv2d_backward")],
    "conv.conv_transpose2d_forward": [(numpy_float, "cpu.conv:conv_transpose2d_forward")],
    "conv.conv_transpose2d_backward": [(numpy_float, "cpu.conv:conv_transpose2d_backward")],
    "pool.maxpool2d_forward": [(numpy_float, "cpu.ops:maxpool2d_forward"), (cupy_float, "gpu.ops:maxpool2d_forward")],
    "pool.maxpool2d_backward": [(numpy_float, "cpu.ops:maxpool2d_backward"),
                                (cupy_float, "gpu.ops:maxpool2d_backward")],
    "lstm.lstm_cell_forward": [(numpy_float, "cpu.ops:lstm_cell_forward"), (cupy_float, "gpu.ops:lstm_cell_forward")],
    "lstm.lstm_cell_backward": [(numpy_float, "cpu.ops:lstm_cell_backward"),
                                (cupy_float, "gpu.ops:lstm_cell_backward")],
    "decoder.decoder_forward": [(float_arrays, "decoder_buffered:decoder_forward")],
    "decoder.decoder_backward": [(always, "decoder_buffered:decoder_backward")],  # its own caches only
    "dropout.make_rng": [(cupy_module, "gpu.ops:make_rng")],
    "losses.add_l2_gradients": [(cupy_one_dtype, "gpu.ops:add_l2_gradients")],
    # tinynet.optim
    "adam.adam_update": [(numpy_float, "cpu.ops:adam_update"), (cupy_float, "gpu.ops:adam_update")],
    "clip.clip_grad_norm": [(cupy_one_dtype, "gpu.ops:clip_grad_norm")],
    "negligible.flush_negligible": [(numpy_float, "cpu.ops:flush_negligible")],
    "update.update_parameters": [(cupy_float, "gpu.ops:update_parameters")],
    # tinynet.dispatch
    "dispatch.side_stream": [(cupy_float, "gpu.ops:side_stream")],
    # the buffered decoder's own steps (tinynet.accel.decoder_buffered)
    "decoder_buffered.lstm_cell_forward_over_input": [(numpy_float, "cpu.ops:lstm_cell_forward_over_input"),
                                                      (cupy_float, "gpu.ops:lstm_cell_forward_over_input")],
    "decoder_buffered.lstm_cell_backward_into": [(numpy_float, "cpu.ops:lstm_cell_backward_into"),
                                                 (cupy_float, "gpu.ops:lstm_cell_backward_into")],
    "decoder_buffered.lstm_layer_step_forward": [(cupy_one_dtype, "gpu.ops:lstm_layer_step_forward")],
    "decoder_buffered.lstm_layer_step_backward": [(cupy_one_dtype, "gpu.ops:lstm_layer_step_backward")],
    "decoder_buffered.output_row_forward": [(cupy_one_dtype, "gpu.ops:output_row_forward")],
    "decoder_buffered.output_row_backward": [(cupy_one_dtype, "gpu.ops:output_row_backward")],
}
