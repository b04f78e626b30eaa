"""The matrix product of every layer, `a @ b`: the one function every product of the
reference goes through, so that an accelerated twin can serve all of them (tinynet.accel:
tinynet's own float32 product on CPUs with AVX-512, cuBLAS called directly on the GPU,
which also works inside a captured CUDA graph and on a second stream)."""

from ..dispatch import accelerated


@accelerated
def matmul(a, b):
    """a @ b for 2-D arrays a (M, K) and b (K, N) -> (M, N)."""
    return a @ b
