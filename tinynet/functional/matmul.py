"""The matrix product of every layer: NumPy's `a @ b` on the CPU; on the GPU cuBLAS called
directly, with a handle per stream, so that the product is the same call in an eager step,
in a step captured in a CUDA graph (where CuPy refuses cuBLAS) and on a second stream
(tinynet.kernels.cuda_fused.gpu_matmul, tinynet.kernels.cuda_blas).
"""

from ..kernels import gpu_kernels


def matmul(a, b):
    """a @ b for 2-D arrays a (M, K) and b (K, N) -> (M, N)."""
    kernels = gpu_kernels(a, b)
    if kernels is None or a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2:
        return a @ b
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    return kernels.gpu_matmul(a, b)
