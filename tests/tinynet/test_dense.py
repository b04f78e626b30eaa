"""Eq. (7) dense layer and the activations of Figure 4 / eq. (16): float64 gradient checks."""

import numpy as np

from tinynet.backend import to_numpy
from tinynet.functional import activations as act
from tinynet.functional.dense import dense_backward, dense_forward
from tinynet.gradcheck import check_gradients
from tinynet.layers import Dense, Sequential, Tanh

BOUND = 1e-6  # worst relative error allowed, float64 central differences (eps 1e-6)


def test_eq07_dense_gradients(xp, rng):
    x = xp.asarray(rng.standard_normal((4, 5)))
    W = xp.asarray(rng.standard_normal((5, 3)))
    b = xp.asarray(rng.standard_normal(3))
    dy = xp.asarray(rng.standard_normal((4, 3)))
    _, cache = dense_forward(x, W, b)
    dx, grads = dense_backward(dy, cache)
    check_gradients(lambda: dense_forward(x, W, b)[0], {"x": x, "W": W, "b": b},
                    {"x": dx, **grads}, dy, bound=BOUND)


def test_eq07_thought_vector_layer_dense_tanh(xp, rng):
    """v = tanh(W^v y + b), the encoder's last layer, through the layer objects."""
    model = Sequential([("fc", Dense(6, 4, rng, dtype=np.float64)), ("tanh", Tanh())]).to(xp)
    x = xp.asarray(rng.standard_normal((3, 6)))
    dy = xp.asarray(rng.standard_normal((3, 4)))
    model.forward(x, train=True)
    dx = model.backward(dy)
    params = model.named_params()
    check_gradients(lambda: model.forward(x), {"x": x, **params}, {"x": dx, **model.named_grads()}, dy, bound=BOUND)


def test_eq16_relu_gradient_away_from_kink(xp, rng):
    x = rng.standard_normal((5, 7))
    x = xp.asarray(np.where(np.abs(x) < 0.1, 0.5, x))  # no input near the kink at 0
    dy = xp.asarray(rng.standard_normal((5, 7)))
    y, cache = act.relu_forward(x)
    np.testing.assert_array_equal(to_numpy(y), np.maximum(to_numpy(x), 0))
    dx, _ = act.relu_backward(dy, cache)
    check_gradients(lambda: act.relu_forward(x)[0], {"x": x}, {"x": dx}, dy, bound=BOUND)


def test_eq16_sigmoid_and_tanh_gradients(xp, rng):
    x = xp.asarray(rng.uniform(-2, 2, (4, 6)))  # unsaturated: tiny derivatives drown in round-off
    dy = xp.asarray(rng.standard_normal((4, 6)))
    for forward, backward in ((act.sigmoid_forward, act.sigmoid_backward), (act.tanh_forward, act.tanh_backward)):
        _, cache = forward(x)
        dx, _ = backward(dy, cache)
        check_gradients(lambda: forward(x)[0], {"x": x}, {"x": dx}, dy, bound=BOUND)


def test_sigmoid_is_stable_for_large_inputs(xp):
    x = xp.asarray([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    y = act.sigmoid(x)
    assert bool(xp.all(xp.isfinite(y)))
    assert float(y[0]) == 0.0 and float(y[2]) == 0.5 and float(y[-1]) == 1.0
