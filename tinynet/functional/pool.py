"""Max pooling, eq. (6): y[i, j, k] = max over p, q of x[i, j*stride + p, k*stride + q].

Windows are a strided view of the input (sliding_windows); forward and backward loop over
the size x size offsets inside a window, never over pixels (a kernel of tinynet.kernels,
Numba on the CPU and CuPy on the GPU, with this code as its reference twin, makes one pass
instead). Sizes are floored like PyTorch: rows or columns that do not fill a window are
dropped (and get zero gradient).
"""

from ..backend import xp_of
from ..kernels import cpu_kernels, gpu_kernels
from ..shapes import sliding_windows


def maxpool2d_forward(x, size=2, stride=2):
    """Eq. (6). x: (N, C, H, W) -> y: (N, C, Ho, Wo), Ho = (H - size) // stride + 1.

    The cache keeps, per window, the offset p * size + q of its maximum; with ties the first
    in row-major order wins, so exactly one input per window receives the gradient.
    """
    kernels = cpu_kernels(x) or gpu_kernels(x)
    if kernels is not None:
        y, winner = kernels.maxpool2d(x, size, stride)
        return y, (x.shape, winner, size, stride)
    xp = xp_of(x)
    windows = sliding_windows(x, size, size, stride)
    y = windows[..., 0, 0]
    winner = xp.zeros(y.shape, dtype=xp.int16)
    for p in range(size):
        for q in range(size):
            candidate = windows[..., p, q]
            winner = xp.where(candidate > y, xp.int16(p * size + q), winner)  # strict: first max wins
            y = xp.maximum(y, candidate)
    return y, (x.shape, winner, size, stride)


def maxpool2d_backward(dy, cache):
    """dy: (N, C, Ho, Wo) -> dx: (N, C, H, W), dy routed to each window's arg-max only."""
    x_shape, winner, size, stride = cache
    kernels = cpu_kernels(dy) or gpu_kernels(dy)
    if kernels is not None:
        return kernels.maxpool2d_backward(dy, winner, x_shape, size, stride), {}
    xp = xp_of(dy)
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    windows = sliding_windows(dx, size, size, stride)
    # With stride < size windows overlap: add one offset at a time, never assign.
    for p in range(size):
        for q in range(size):
            windows[..., p, q] += xp.where(winner == p * size + q, dy, 0)
    return dx, {}
