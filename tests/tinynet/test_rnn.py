"""Eqs. (1), (2): the plain RNN of section 3, one step and through time (float64 gradient checks)."""

import numpy as np
import pytest

from tinynet.backend import to_numpy
from tinynet.functional.rnn import (
    rnn_backward,
    rnn_forward,
    rnn_output_backward,
    rnn_output_forward,
    rnn_step_backward,
    rnn_step_forward,
)
from tinynet.gradcheck import check_gradients, in_long_double, layer_in_long_double
from tinynet.layers import RNN

# worst relative error allowed: float64 analytic gradients against central differences
# (eps 1e-6) of the same forward recomputed in long double (tinynet.gradcheck.in_long_double);
# where long double is no wider than float64, norm-wise against gradcheck.FLOAT64_NORMWISE_BOUND
BOUND = 1e-6
N, T, D, H, M = 3, 4, 5, 7, 3  # batch, steps, input, hidden, output sizes


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def arrays(xp, rng, *shapes):
    """Standard normal arrays (inputs, states, upstream gradients, biases)."""
    return [xp.asarray(rng.standard_normal(shape)) for shape in shapes]


def weights(xp, rng, *shapes):
    """Weight matrices scaled by 1/sqrt(fan_in): the units stay unsaturated (tiny slopes
    would drown in round-off)."""
    return [xp.asarray(rng.standard_normal(shape) / np.sqrt(shape[0])) for shape in shapes]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_eq01_rnn_step_gradients(xp, rng, activation):
    x, h_prev, b, dh = arrays(xp, rng, (N, D), (N, H), (H,), (N, H))
    Wx, Wh = weights(xp, rng, (D, H), (H, H))
    h, cache = rnn_step_forward(x, h_prev, Wx, Wh, b, activation)
    squash = sigmoid if activation == "sigmoid" else np.tanh
    expected = squash(to_numpy(x) @ to_numpy(Wx) + to_numpy(h_prev) @ to_numpy(Wh) + to_numpy(b))
    np.testing.assert_allclose(to_numpy(h), expected, rtol=1e-12)

    dx, dh_prev, grads = rnn_step_backward(dh, cache)
    f = in_long_double(lambda *arrays: rnn_step_forward(*arrays, activation)[0], x, h_prev, Wx, Wh, b)
    check_gradients(f,
                    {"x": x, "h_prev": h_prev, "Wx": Wx, "Wh": Wh, "b": b},
                    {"x": dx, "h_prev": dh_prev, **grads}, dh, bound=BOUND)


def test_eq01_rnn_sequence_bptt_gradients(xp, rng):
    """Backpropagation through time: every step's gradient reaches x, h0 and the shared weights."""
    x, h0, b, dh = arrays(xp, rng, (N, T, D), (N, H), (H,), (N, T, H))
    Wx, Wh = weights(xp, rng, (D, H), (H, H))
    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    h_prev = to_numpy(h0)
    for t in range(T):  # eq. (1) step by step, by hand
        h_prev = sigmoid(to_numpy(x[:, t]) @ to_numpy(Wx) + h_prev @ to_numpy(Wh) + to_numpy(b))
        np.testing.assert_allclose(to_numpy(h[:, t]), h_prev, rtol=1e-12)

    dx, dh0, grads = rnn_backward(dh, cache)
    f = in_long_double(lambda *arrays: rnn_forward(*arrays)[0], x, h0, Wx, Wh, b)
    check_gradients(f,
                    {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b},
                    {"x": dx, "h0": dh0, **grads}, dh, bound=BOUND)


def test_eq02_rnn_output_gradients(xp, rng):
    """Eq. (2) as corrected: y_t = f(h_t Wy + by) reads the hidden state, not x_t."""
    h, by, dy = arrays(xp, rng, (N, T, H), (M,), (N, T, M))
    (Wy,) = weights(xp, rng, (H, M))
    y, cache = rnn_output_forward(h, Wy, by)
    np.testing.assert_allclose(to_numpy(y), sigmoid(to_numpy(h) @ to_numpy(Wy) + to_numpy(by)), rtol=1e-12)

    dh, grads = rnn_output_backward(dy, cache)
    f = in_long_double(lambda *arrays: rnn_output_forward(*arrays)[0], h, Wy, by)
    check_gradients(f, {"h": h, "Wy": Wy, "by": by},
                    {"h": dh, **grads}, dy, bound=BOUND)


def test_eq01_eq02_rnn_layer_gradients(xp, rng):
    """The RNN layer (h_0 = 0): eqs. (1) and (2) chained, through the Layer API."""
    layer = RNN(D, H, M, rng, activation="tanh", dtype=np.float64).to(xp)
    twin = RNN(D, H, M, rng, activation="tanh", dtype=np.longdouble)
    x, dy = arrays(xp, rng, (N, T, D), (N, T, M))
    layer.forward(x, train=True)
    dx = layer.backward(dy)
    assert set(layer.named_weights()) == {"Wx", "Wh", "Wy"}
    f = layer_in_long_double(lambda model, x: model.forward(x), layer, twin, x)
    check_gradients(f, {"x": x, **layer.named_params()},
                    {"x": dx, **layer.named_grads()}, dy, bound=BOUND)


def test_rnn_rejects_unknown_activation(rng):
    x, h_prev, Wx, Wh, b = arrays(np, rng, (N, D), (N, H), (D, H), (H, H), (H,))
    with pytest.raises(ValueError, match="relu"):
        rnn_step_forward(x, h_prev, Wx, Wh, b, activation="relu")
