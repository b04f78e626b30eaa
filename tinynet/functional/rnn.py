"""The plain recurrent network of section 3: eq. (1) for the hidden state, eq. (2) for the output.

    h_t = sigma(x_t Wx + h_{t-1} Wh + b)        (1)
    y_t = f(h_t Wy + by)                        (2)

Erratum: the paper prints eq. (2) as y_t = f(w_hx x_t + b), which would make the output
ignore the hidden state; the recurrent network it describes (Figure 2) reads the output
from the hidden state, y_t = f(w_hy h_t + b), and that is what is implemented here.

sigma is the sigmoid in the paper; tanh is offered as well. The sequence functions keep
one cache per step and backpropagate through time by walking t = T-1 .. 0.
"""

from ..backend import xp_of
from . import activations as act
from .dense import dense_backward, dense_forward
from .matmul import matmul

ACTIVATIONS = {
    "sigmoid": (act.sigmoid_forward, act.sigmoid_backward),
    "tanh": (act.tanh_forward, act.tanh_backward),
}


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def rnn_step_forward(x, h_prev, Wx, Wh, b, activation="sigmoid"):
    """Eq. (1), one step: h = sigma(x Wx + h_prev Wh + b).

    x: (N, D), h_prev: (N, H), Wx: (D, H), Wh: (H, H), b: (H,) -> h: (N, H), cache.
    """
    forward, backward = _activation(activation)
    a = matmul(x, Wx)
    a += matmul(h_prev, Wh)
    a += b
    h, act_cache = forward(a)
    return h, (x, h_prev, Wx, Wh, backward, act_cache)


def rnn_step_backward(dh, cache):
    """Backward of eq. (1): dh (N, H) -> dx (N, D), dh_prev (N, H), grads {Wx, Wh, b}."""
    x, h_prev, Wx, Wh, backward, act_cache = cache
    da, _ = backward(dh, act_cache)
    grads = {"Wx": matmul(x.T, da), "Wh": matmul(h_prev.T, da), "b": da.sum(axis=0)}
    return matmul(da, Wx.T), matmul(da, Wh.T), grads


def rnn_forward(x, h0, Wx, Wh, b, activation="sigmoid"):
    """Eq. (1) over a sequence: x (N, T, D), h0 (N, H) -> h (N, T, H), cache (one per step)."""
    N, T, _ = x.shape
    h = xp_of(x).empty((N, T, Wh.shape[0]), dtype=x.dtype)
    h_prev, caches = h0, []
    for t in range(T):
        h_prev, step_cache = rnn_step_forward(x[:, t], h_prev, Wx, Wh, b, activation)
        h[:, t] = h_prev
        caches.append(step_cache)
    return h, caches


def rnn_backward(dh, cache):
    """Backpropagation through time for eq. (1).

    dh: (N, T, H), the loss's gradient w.r.t. every hidden state (from the layer above).
    Returns dx (N, T, D), dh0 (N, H), grads {Wx, Wh, b} summed over the steps.
    At step t the state's gradient is the one from above plus the one carried back from
    step t+1 through h_t's use as h_prev there.
    """
    xp = xp_of(dh)
    N, T, H = dh.shape
    _, _, Wx, Wh, _, _ = cache[0]
    dx = xp.empty((N, T, Wx.shape[0]), dtype=dh.dtype)
    dh_next = xp.zeros((N, H), dtype=dh.dtype)
    grads = {"Wx": xp.zeros_like(Wx), "Wh": xp.zeros_like(Wh), "b": xp.zeros(H, dtype=dh.dtype)}
    for t in reversed(range(T)):
        dx[:, t], dh_next, step_grads = rnn_step_backward(dh[:, t] + dh_next, cache[t])
        for key, grad in step_grads.items():
            grads[key] += grad
    return dx, dh_next, grads


def rnn_output_forward(h, Wy, by, activation="sigmoid"):
    """Eq. (2), corrected: y_t = f(h_t Wy + by) for every step.

    h: (N, T, H), Wy: (H, M), by: (M,) -> y: (N, T, M), cache.
    """
    forward, backward = _activation(activation)
    N, T, H = h.shape
    a, dense_cache = dense_forward(h.reshape(N * T, H), Wy, by)
    y, act_cache = forward(a)
    return y.reshape(N, T, -1), (dense_cache, backward, act_cache)


def rnn_output_backward(dy, cache):
    """Backward of eq. (2): dy (N, T, M) -> dh (N, T, H), grads {Wy, by}."""
    dense_cache, backward, act_cache = cache
    N, T, M = dy.shape
    da, _ = backward(dy.reshape(N * T, M), act_cache)
    dh, grads = dense_backward(da, dense_cache)
    return dh.reshape(N, T, -1), {"Wy": grads["W"], "by": grads["b"]}
