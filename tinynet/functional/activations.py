"""Element-wise activations: sigmoid and tanh (Figure 4), ReLU (eq. 16).

Each backward uses the forward's output (or input), written beside the formula.
"""

from ..backend import xp_of


def sigmoid(x):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    xp = xp_of(x)
    return 0.5 * (xp.tanh(0.5 * x) + 1)


def sigmoid_forward(x):
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dy, y):
    """d sigmoid / dx = y (1 - y)."""
    return dy * y * (1 - y), {}


def tanh_forward(x):
    y = xp_of(x).tanh(x)
    return y, y


def tanh_backward(dy, y):
    """d tanh / dx = 1 - y^2."""
    return dy * (1 - y * y), {}


def relu_forward(x):
    """Eq. (16): max(0, x)."""
    y = xp_of(x).maximum(x, 0)
    return y, y


def relu_backward(dy, y):
    """d relu / dx = 1 where x > 0, else 0 (y > 0 exactly where x > 0)."""
    return dy * (y > 0), {}
