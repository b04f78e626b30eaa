"""The LSTM cell of the decoder, eqs. (8)-(13) of section 4.2.2, and its backward.

The gate pre-activations form one (N, 4H) array a = sum_k inputs_k W_k + b in contiguous
blocks i, f, g, o (PyTorch's order; g is the new state C~ of eq. 11):

    i_t = sigmoid(a_i)                  (8)    input gate
    f_t = sigmoid(a_f)                  (9)    forget gate
    o_t = sigmoid(a_o)                  (10)   output gate
    g_t = tanh(a_g)                     (11)   new state C~_t
    c_t = f_t * c_{t-1} + i_t * g_t     (12)
    h_t = o_t * tanh(c_t)               (13)

The decoder's bottom layer has the four input terms of eqs. (8)-(11),
a = x_t W^x + h_{t-1} W^h + v W^v + y_{t-1} W^y + b (the paper leaves the biases out);
the layers above it have a = x_t W^x + h_{t-1} W^h + b with x_t the hidden state below.

Erratum, eq. (13): the paper prints h_t = tanh(C_t) * i_t, which leaves the output gate of
eq. (10) unused. The default is the standard LSTM, h_t = o_t * tanh(c_t);
`literal_eq13=True` gives the printed form.

`lstm_cell_*` hold the maths after the matrix products; `lstm_step_*` is one whole step
with its gates fed by any number of inputs; `lstm_forward/backward` run one layer over a
sequence and backpropagate through time, CS231n-style. The decoder with direct attention
(tinynet.functional.decoder) stacks these steps.
"""

from ..backend import xp_of
from ..dispatch import accelerated
from ..negligible import flush_negligible
from ..shapes import gate_blocks
from .activations import sigmoid
from .matmul import matmul


@accelerated
def lstm_cell_forward(a, c_prev, literal_eq13=False):
    """Eqs. (8)-(13) from the gate pre-activations.

    a: (N, 4H) pre-activations in blocks i, f, g, o; c_prev: (N, H) cell state c_{t-1}.
    Returns h (N, H), c (N, H) and the cache (gates, c_prev, tanh(c), literal_eq13), where
    gates (N, 4H) holds the activated gates in the same blocks.
    """
    xp = xp_of(a)
    a_i, a_f, a_g, a_o = gate_blocks(a)
    gates = xp.concatenate([sigmoid(a_i), sigmoid(a_f), xp.tanh(a_g), sigmoid(a_o)], axis=-1)  # eqs. (8)-(11)
    i, f, g, o = gate_blocks(gates)
    c = f * c_prev + i * g  # eq. (12)
    tanh_c = xp.tanh(c)
    h = (i if literal_eq13 else o) * tanh_c  # eq. (13)
    return h, c, (gates, c_prev, tanh_c, literal_eq13)


@accelerated
def lstm_cell_backward(dh, dc, cache):
    """Backward of eqs. (8)-(13) down to the pre-activations.

    dh: (N, H) gradient w.r.t. h_t (from the layer above plus from step t+1).
    dc: (N, H) gradient w.r.t. c_t carried back from step t+1.
    Returns da (N, 4H), dc_prev (N, H), each with its negligible values set to 0
    (tinynet.negligible: a saturated gate's tiny slopes would otherwise leave subnormal
    floats in them, slow on CPUs).
    """
    gates, c_prev, tanh_c, literal_eq13 = cache
    xp = xp_of(gates)
    i, f, g, o = gate_blocks(gates)
    # eq. (13), h = u tanh(c) with u = o (or i as printed): c_t gets dh's share too
    dc = dc + dh * (i if literal_eq13 else o) * (1 - tanh_c * tanh_c)
    # eq. (12), c = f c_prev + i g: gradients w.r.t. the gates' outputs
    di, df, dg = dc * g, dc * c_prev, dc * i
    if literal_eq13:
        di = di + dh * tanh_c
        do = xp.zeros_like(o)  # the output gate does not reach the loss in the printed eq. (13)
    else:
        do = dh * tanh_c
    # eqs. (8)-(11): times the slopes, sigmoid' = s (1 - s) and tanh' = 1 - g^2
    da = xp.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], axis=-1)
    dc_prev = dc * f
    flush_negligible(da)
    flush_negligible(dc_prev)
    return da, dc_prev


def lstm_step_forward(inputs, c_prev, weights, b, literal_eq13=False):
    """One LSTM step whose gates are fed by several inputs, eqs. (8)-(13).

    inputs: tuple of (N, D_k) arrays, e.g. (x_t, h_prev) or (x_t, h_prev, v, y_prev).
    c_prev: (N, H); weights: tuple of (D_k, 4H) arrays, one per input; b: (4H,).
    Returns h (N, H), c (N, H), cache.
    """
    a = sum(matmul(x, W) for x, W in zip(inputs, weights)) + b
    h, c, cell_cache = lstm_cell_forward(a, c_prev, literal_eq13)
    return h, c, (inputs, weights, cell_cache)


def lstm_step_backward(dh, dc, cache):
    """Backward of one step: dh, dc (N, H), the gradients w.r.t. h_t and c_t.

    Returns dinputs (tuple shaped like inputs; the one for h_prev is dh_next for step
    t-1), dc_prev (N, H) (dc_next for step t-1), dweights (tuple like weights), db (4H,).
    """
    inputs, weights, cell_cache = cache
    da, dc_prev = lstm_cell_backward(dh, dc, cell_cache)
    dinputs = tuple(matmul(da, W.T) for W in weights)
    dweights = tuple(matmul(x.T, da) for x in inputs)
    return dinputs, dc_prev, dweights, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b, literal_eq13=False):
    """One LSTM layer over a sequence, eqs. (8)-(13) at every step, with c_0 = 0.

    x: (N, T, D), h0: (N, H), Wx: (D, 4H), Wh: (H, 4H), b: (4H,) -> h: (N, T, H), cache
    (one step cache per t).
    """
    xp = xp_of(x)
    h_prev, c_prev = h0, xp.zeros_like(h0)
    hs, caches = [], []
    for t in range(x.shape[1]):
        h_prev, c_prev, step_cache = lstm_step_forward((x[:, t], h_prev), c_prev, (Wx, Wh), b, literal_eq13)
        hs.append(h_prev)
        caches.append(step_cache)
    return xp.stack(hs, axis=1), caches


def lstm_backward(dh, cache):
    """Backpropagation through time for lstm_forward.

    dh: (N, T, H), the loss's gradient w.r.t. every hidden state (from the layer above).
    Returns dx (N, T, D), dh0 (N, H), grads {Wx, Wh, b} summed over the steps. Walking
    t = T-1 .. 0, the step's dh is the one from above plus the one carried back from step
    t+1 through h_t's use as h_prev there; dc is carried back through c_t alone.
    """
    xp = xp_of(dh)
    dh_next, dc_next = xp.zeros_like(dh[:, 0]), xp.zeros_like(dh[:, 0])
    dxs, grads = [], {"Wx": 0, "Wh": 0, "b": 0}
    for t in reversed(range(dh.shape[1])):
        (dx, dh_next), dc_next, (dWx, dWh), db = lstm_step_backward(dh[:, t] + dh_next, dc_next, cache[t])
        dxs.append(dx)
        grads = {"Wx": grads["Wx"] + dWx, "Wh": grads["Wh"] + dWh, "b": grads["b"] + db}
    return xp.stack(dxs[::-1], axis=1), dh_next, grads
