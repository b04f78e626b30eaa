"""The matrix product of every layer: NumPy's `a @ b` on the CPU; on the GPU tinynet's own
GEMM kernel (tinynet.kernels.cuda_fused.matmul), because CuPy's cuBLAS calls cannot be
captured in a CUDA graph (tinynet.kernels.cuda_graph)."""

from ..kernels import gpu_kernels


def matmul(a, b):
    """a @ b for 2-D arrays a (M, K) and b (K, N) -> (M, N)."""
    kernels = gpu_kernels(a, b)
    if kernels is None or a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2:
        return a @ b
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    return kernels.matmul(a, b)
