"""Optional accelerators: kernels that compute exactly what a plain NumPy expression in
`tinynet.functional` or `tinynet.optim` computes, only faster.

`numba_cpu` holds Numba kernels for NumPy arrays on the CPU: im2col / col2im of the
convolutions, max pooling, the LSTM cell forward and backward, the Adam update;
`numba_gemm` the float32 matrix product and direct (column-free) convolutions on CPUs with
AVX-512. The plain code they replace stays where it is, as each kernel's reference twin,
and tests/test_kernels.py and tests/test_gemm.py check that the two agree. `cuda_fused`
holds CuPy kernels for CuPy arrays (the LSTM cell forward and backward, one decoder step
and output row each way, the Adam update, gradient clipping, eq. (17)'s gradient,
dropout's counter-based random numbers and a matrix product; tests/test_gpu_kernels.py),
`cuda_update` the whole parameter update of a step in two kernels, `cuda_graph` replays a
whole training step captured in a CUDA graph, `cuda_blas` calls cuBLAS inside such a
capture, where CuPy will not, and `cuda_streams` runs work beside other work on a second
stream (`beside`).

Environment: TINYNET_NUMPY=1 (read once, at import) forces the plain NumPy path everywhere.
Tests switch at run time by setting `ENABLED`.
"""

import os

import numpy as np

from ..backend import is_gpu_array

ENABLED = os.environ.get("TINYNET_NUMPY", "") != "1"

_KERNEL_DTYPES = (np.float32, np.float64)
_numba_cpu = None
_numba_gemm = None
_cuda_fused = None


def cpu_kernels(*arrays):
    """The `numba_cpu` module when its kernels may serve `arrays`, else None.

    They serve float32 and float64 NumPy arrays only (not CuPy arrays, not the long double
    twins of the gradient checks). The module is imported, and its cached machine code
    loaded, on first use.
    """
    global _numba_cpu
    if not ENABLED or not all(type(a) is np.ndarray and a.dtype in _KERNEL_DTYPES for a in arrays):
        return None
    if _numba_cpu is None:
        from . import numba_cpu

        _numba_cpu = numba_cpu
    return _numba_cpu


def cpu_gemm(*arrays):
    """The `numba_gemm` module when it may serve `arrays`: float32 NumPy arrays, on a CPU with
    AVX-512 (elsewhere NumPy's BLAS is as fast); else None."""
    global _numba_gemm
    if not ENABLED or not all(type(a) is np.ndarray and a.dtype == np.float32 for a in arrays):
        return None
    if _numba_gemm is None:
        from . import numba_gemm

        _numba_gemm = numba_gemm
    return _numba_gemm if _numba_gemm.USEFUL else None


def gpu_kernels(*arrays):
    """The `cuda_fused` module when its kernels may serve `arrays`, else None.

    They serve float32 and float64 CuPy arrays only; the module (and CuPy) is imported on
    first use, so the CPU path never touches it.
    """
    global _cuda_fused
    if not ENABLED or type(arrays[0]) is np.ndarray:  # the common CPU case, decided at once
        return None
    if not all(is_gpu_array(a) and a.dtype in _KERNEL_DTYPES for a in arrays):
        return None
    if _cuda_fused is None:
        from . import cuda_fused

        _cuda_fused = cuda_fused
    return _cuda_fused


def gpu_kernels_one_dtype(*arrays):
    """gpu_kernels(*arrays) when the arrays also share one dtype (the templated kernels take
    a single T), else None."""
    kernels = gpu_kernels(*arrays)
    return kernels if kernels is not None and len({a.dtype for a in arrays}) == 1 else None


class InPlace:
    """What `beside` gives where there is no second stream: run() runs at once."""

    def run(self, fn):
        fn()

    def join(self):
        pass


def beside(like):
    """Work that later work does not need: `run(fn)` enqueues fn() and `join()` waits for
    all of it. On a second CUDA stream when `like` is a CuPy array the kernels serve
    (tinynet.kernels.cuda_streams), else at once, in place."""
    if gpu_kernels(like) is None:
        return InPlace()
    from .cuda_streams import SideStream

    return SideStream()
