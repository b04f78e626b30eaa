"""Eq. (6) max pooling: float64 gradient checks on distinct values, a naive loop, PyTorch
where importable, and one winner per window when values tie."""

import numpy as np
import pytest

from tinynet.backend import to_numpy
from tinynet.functional.pool import maxpool2d_backward, maxpool2d_forward
from tinynet.gradcheck import check_gradients
from tinynet.layers import MaxPool2D

BOUND = 1e-6  # worst relative error allowed, float64 central differences (eps 1e-6)

# (x shape, size, stride): odd non-square images (floored like PyTorch), overlapping windows.
POOL_CASES = [
    ((2, 3, 7, 5), 2, 2),
    ((2, 2, 7, 6), 3, 2),
    ((1, 2, 9, 7), 3, 3),
    ((1, 2, 5, 6), 2, 1),
]


def distinct_values(rng, shape):
    """A shuffled grid 0.1 apart: no two inputs tie, even after an eps perturbation."""
    return 0.1 * rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64)


def maxpool2d_naive(x, size, stride):
    N, C, H, W = x.shape
    Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
    y = np.empty((N, C, Ho, Wo))
    for h in range(Ho):
        for w in range(Wo):
            y[:, :, h, w] = x[:, :, h * stride:h * stride + size, w * stride:w * stride + size].max(axis=(2, 3))
    return y


@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_eq06_maxpool_gradients(xp, rng, shape, size, stride):
    x = xp.asarray(distinct_values(rng, shape))
    y, cache = maxpool2d_forward(x, size, stride)
    dy = xp.asarray(rng.standard_normal(y.shape))
    dx, grads = maxpool2d_backward(dy, cache)
    assert grads == {}
    check_gradients(lambda: maxpool2d_forward(x, size, stride)[0], {"x": x}, {"x": dx}, dy, bound=BOUND)


@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_eq06_maxpool_matches_naive_loop(xp, rng, shape, size, stride):
    x = rng.standard_normal(shape)
    y, _ = maxpool2d_forward(xp.asarray(x), size, stride)
    np.testing.assert_array_equal(to_numpy(y), maxpool2d_naive(x, size, stride))


@pytest.mark.parametrize("shape, size, stride", POOL_CASES)
def test_eq06_maxpool_matches_torch(xp, rng, shape, size, stride):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the naive loop is the reference")
    x, dy_shape = distinct_values(rng, shape), maxpool2d_naive(np.zeros(shape), size, stride).shape
    dy = rng.standard_normal(dy_shape)
    y, cache = maxpool2d_forward(xp.asarray(x), size, stride)
    dx, _ = maxpool2d_backward(xp.asarray(dy), cache)
    x_torch = torch.from_numpy(x).requires_grad_()
    y_torch = torch.nn.functional.max_pool2d(x_torch, size, stride)
    y_torch.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(to_numpy(y), y_torch.detach().numpy())
    np.testing.assert_allclose(to_numpy(dx), x_torch.grad.numpy(), rtol=1e-15, atol=0)


def test_eq06_maxpool_ties_have_one_winner(xp, rng):
    """Equal values: the first maximum of each window (row-major) takes the whole gradient."""
    x = xp.ones((2, 3, 5, 7))
    y, cache = maxpool2d_forward(x, 2, 2)
    dy = xp.asarray(rng.uniform(1, 2, y.shape))
    dx, _ = maxpool2d_backward(dy, cache)
    expected = np.zeros(x.shape)
    expected[:, :, 0:4:2, 0:6:2] = to_numpy(dy)
    np.testing.assert_array_equal(to_numpy(dx), expected)


def test_eq06_maxpool_overlapping_windows_add(xp, rng):
    """A pixel that wins several overlapping windows receives the sum of their gradients."""
    x = xp.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # inside all nine 3x3 windows
    y, cache = maxpool2d_forward(x, 3, 1)
    dy = xp.asarray(rng.uniform(1, 2, y.shape))
    dx, _ = maxpool2d_backward(dy, cache)
    expected = np.zeros(x.shape)
    expected[0, 0, 2, 2] = to_numpy(dy).sum()
    np.testing.assert_allclose(to_numpy(dx), expected, rtol=1e-14, atol=0)


def test_maxpool_layer_keeps_float32(xp, rng):
    layer = MaxPool2D()
    x = xp.asarray(rng.standard_normal((2, 32, 28, 28)), dtype=xp.float32)
    y = layer.forward(x, train=True)
    dx = layer.backward(xp.ones_like(y))
    assert y.shape == (2, 32, 14, 14) and y.dtype == dx.dtype == np.float32
    assert float(xp.sum(dx)) == y.size  # one winner per window
