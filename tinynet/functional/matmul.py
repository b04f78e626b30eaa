"""The matrix product of every layer: NumPy's `a @ b` on the CPU. On the GPU, cuBLAS through
CuPy's `a @ b`, except while a CUDA graph is being captured (tinynet.kernels.cuda_graph):
CuPy refuses cuBLAS calls during a capture, so a captured step multiplies with tinynet's
own GEMM kernel (tinynet.kernels.cuda_fused.matmul)."""

from ..kernels import gpu_kernels


def matmul(a, b):
    """a @ b for 2-D arrays a (M, K) and b (K, N) -> (M, N)."""
    kernels = gpu_kernels(a, b)
    if kernels is None or a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2 or not kernels.stream_is_capturing():
        return a @ b
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    return kernels.matmul(a, b)
