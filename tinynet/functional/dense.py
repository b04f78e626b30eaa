"""Fully connected layer, eq. (7) without its activation: y = x W + b."""

from .matmul import matmul


def dense_forward(x, W, b):
    """x: (N, D), W: (D, M), b: (M,) -> y: (N, M)."""
    y = matmul(x, W)
    y += b
    return y, (x, W)


def dense_backward(dy, cache):
    """dy: (N, M) -> dx: (N, D), grads {W: (D, M), b: (M,)}.

    dL/dx = dy W^T, dL/dW = x^T dy, dL/db = sum over the batch of dy.
    """
    x, W = cache
    return matmul(dy, W.T), {"W": matmul(x.T, dy), "b": dy.sum(axis=0)}
