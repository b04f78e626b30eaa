"""The matrix product of every layer: NumPy's `a @ b` on the CPU, CuPy's (cuBLAS) on the GPU.

While a CUDA graph is being captured (tinynet.kernels.cuda_graph) CuPy refuses cuBLAS, so the
product then goes through tinynet.kernels.cuda_fused.captured_matmul: cuBLAS called through
its C API, or tinynet's own GEMM kernel where that is not possible.
"""

from ..kernels import gpu_kernels


def matmul(a, b):
    """a @ b for 2-D arrays a (M, K) and b (K, N) -> (M, N)."""
    kernels = gpu_kernels(a, b)
    if kernels is None or a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2 or not kernels.stream_is_capturing():
        return a @ b
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    return kernels.captured_matmul(a, b)
