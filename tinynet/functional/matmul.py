"""The matrix product of every layer. On the CPU NumPy's `a @ b`, or for float32 on a CPU
with AVX-512 tinynet's own (tinynet.kernels.numba_gemm; NumPy's OpenBLAS may be held to
AVX2 kernels there). On the GPU cuBLAS called directly, with a handle per stream, so that
the product is the same call in an eager step, in a step captured in a CUDA graph (where
CuPy refuses cuBLAS) and on a second stream (tinynet.kernels.cuda_fused.gpu_matmul,
tinynet.kernels.cuda_blas).
"""

from ..kernels import cpu_gemm, gpu_kernels


def matmul(a, b):
    """a @ b for 2-D arrays a (M, K) and b (K, N) -> (M, N)."""
    kernels = gpu_kernels(a, b)
    if kernels is None:
        gemm = cpu_gemm(a, b)
        return a @ b if gemm is None or a.ndim != 2 or b.ndim != 2 else gemm.matmul(a, b)
    if a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2:
        return a @ b
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    return kernels.gpu_matmul(a, b)
