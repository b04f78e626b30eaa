"""Max pooling, eq. (6): y[i, j, k] = max over p, q of x[i, j*stride + p, k*stride + q].

Windows are a strided view of the input (tinynet.shapes.sliding_windows); forward and
backward loop over the size x size offsets inside a window, never over pixels. Sizes are
floored like PyTorch: rows or columns that do not fill a window are dropped (and get zero
gradient).
"""

from ..backend import xp_of
from ..dispatch import accelerated
from ..shapes import sliding_windows


@accelerated
def maxpool2d_forward(x, size=2, stride=2):
    """Eq. (6). x: (N, C, H, W) -> y: (N, C, Ho, Wo), Ho = (H - size) // stride + 1.

    The cache keeps, per window, the offset p * size + q of its maximum; with ties the first
    in row-major order wins, so exactly one input per window receives the gradient.
    """
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


@accelerated
def maxpool2d_backward(dy, cache):
    """dy: (N, C, Ho, Wo) -> dx: (N, C, H, W), dy routed to each window's arg-max only."""
    x_shape, winner, size, stride = cache
    xp = xp_of(dy)
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    windows = sliding_windows(dx, size, size, stride)
    # With stride < size windows overlap: add one offset at a time, never assign.
    for p in range(size):
        for q in range(size):
            windows[..., p, q] += xp.where(winner == p * size + q, dy, 0)
    return dx, {}
