"""The decoder with direct attention (section 4.2.2, Figure 3): a stack of LSTM layers that
draws an image row by row, and its backpropagation through time.

At step t (image row t) the bottom layer's gates read four inputs, eqs. (8)-(11):

    a^0_t = x_t W^x + h^0_{t-1} W^h + v W^v + y_{t-1} W^y + b^0

(the corrupted row x_t, its own previous state, the thought vector v, and the decoder's
own previous output row y_{t-1}: "direct attention"); layer l > 0 reads the state of the
layer below and its own previous state, a^l_t = h^{l-1}_t W^x + h^l_{t-1} W^h + b^l. Each
layer then runs the cell of eqs. (8)-(13) (tinynet.functional.lstm). The output row is

    y_t = sigmoid(h^{L-1}_t W_out + b_out)      (14)

and is fed back as y_{t-1} of the next step (the decoder's own output, not the target).
h, c and y start at 0. With dropout, the state going up (to the next layer, or to the
output layer) is multiplied by an inverted-dropout mask of its own for each layer and step;
the masks are arguments, so forward and backward are plain functions of their inputs.

Parameters, by name: layer0/{Wx, Wh, Wv, Wy, b}, layer{l}/{Wx, Wh, b} for l >= 1,
out/{W, b}; every gate weight is (inputs, 4H) with gate blocks i, f, g, o.

The fast version (one product per step and layer over stacked weights, time-major
buffers, weight gradients in one product over all steps; on the GPU fused kernels) is the
accelerated twin tinynet.accel.decoder_buffered, tested against this one.
"""

from ..backend import xp_of
from ..dispatch import accelerated
from .activations import sigmoid_backward, sigmoid_forward
from .dense import dense_backward, dense_forward
from .lstm import lstm_step_backward, lstm_step_forward

BOTTOM_INPUTS = ("Wx", "Wh", "Wv", "Wy")  # the weights of (x_t, h^0_{t-1}, v, y_{t-1})
UPPER_INPUTS = ("Wx", "Wh")  # the weights of (h^{l-1}_t after dropout, h^l_{t-1})


def num_layers(params):
    """The number of LSTM layers in a decoder's parameters."""
    return sum(1 for key in params if key.startswith("layer") and key.endswith("/b"))


def layer_weights(params, l):
    """The gate weights of layer l, in the order of its step inputs."""
    return tuple(params[f"layer{l}/{key}"] for key in (BOTTOM_INPUTS if l == 0 else UPPER_INPUTS))


@accelerated
def decoder_forward(x_rows, v, params, masks=None, literal_eq13=False):
    """Eqs. (8)-(14) over all rows.

    x_rows: (N, T, D) corrupted rows; v: (N, V) thought vector; params: {name: array} as in
    the module docstring; masks: None (no dropout) or (L, T, N, H) inverted-dropout masks,
    masks[l, t] on the state that layer l sends up at step t.
    Returns y (N, T, D) and the cache.
    """
    xp = xp_of(x_rows)
    N, T, D = x_rows.shape
    L, H = num_layers(params), params["layer0/Wh"].shape[0]
    zero_state = xp.zeros((N, H), dtype=params["out/W"].dtype)
    h, c = [zero_state] * L, [zero_state] * L
    y_prev = xp.zeros((N, D), dtype=params["out/W"].dtype)
    ys, caches = [], []
    for t in range(T):
        step_caches, sent_up = [], None  # what layer l - 1 sent up at step t (after dropout)
        for l in range(L):
            inputs = (x_rows[:, t], h[0], v, y_prev) if l == 0 else (sent_up, h[l])
            h[l], c[l], cache = lstm_step_forward(inputs, c[l], layer_weights(params, l), params[f"layer{l}/b"],
                                                  literal_eq13)
            step_caches.append(cache)
            sent_up = h[l] if masks is None else h[l] * masks[l, t]
        z, out_cache = dense_forward(sent_up, params["out/W"], params["out/b"])
        y_prev, _ = sigmoid_forward(z)  # eq. (14), fed back at step t + 1
        ys.append(y_prev)
        caches.append((step_caches, out_cache, y_prev))
    return xp.stack(ys, axis=1), (caches, masks, zero_state)


@accelerated
def decoder_backward(dy, cache, side=None):
    """Backpropagation through time of decoder_forward.

    dy: (N, T, D), the loss's gradient w.r.t. every output row.
    Returns dx_rows (N, T, D), dv (N, V) and grads {name: array} keyed like the params.
    side: an executor (tinynet.dispatch.side_stream) that the accelerated twin may hand the
    weight gradients to, joined by the caller; this plain version computes every gradient
    inside its sweep and does not use it.

    Walking t = T-1 .. 0: the output row's gradient is the loss's plus the one that step
    t+1 sent back through y_t's use as its y_{t-1}; then, from the top layer down, each
    layer's step gets the gradient from above (through its dropout mask) plus dh carried
    back from step t+1, and dc carried back through c_t. The bottom layer hands the
    gradient w.r.t. y_{t-1} to the output of step t-1; v's gradient sums over all steps.
    """
    caches, masks, zero_state = cache
    L = len(caches[0][0])
    grads = {}

    def accumulate(name, grad):
        grads[name] = grads[name] + grad if name in grads else grad

    dh = [zero_state] * L  # carried back from step t+1 (nothing at the last step)
    dc = [zero_state] * L
    dy_fed_back, dv, dx_rows = xp_of(dy).zeros_like(dy[:, 0]), 0, []
    for t in reversed(range(dy.shape[1])):
        step_caches, out_cache, y_t = caches[t]
        dz, _ = sigmoid_backward(dy[:, t] + dy_fed_back, y_t)  # eq. (14)
        d_sent_up, out_grads = dense_backward(dz, out_cache)
        accumulate("out/W", out_grads["W"])
        accumulate("out/b", out_grads["b"])
        for l in reversed(range(L)):
            d_h = d_sent_up if masks is None else d_sent_up * masks[l, t]
            dinputs, dc[l], dweights, db = lstm_step_backward(d_h + dh[l], dc[l], step_caches[l])
            for key, dW in zip(BOTTOM_INPUTS if l == 0 else UPPER_INPUTS, dweights):
                accumulate(f"layer{l}/{key}", dW)
            accumulate(f"layer{l}/b", db)
            if l == 0:
                dx_t, dh[0], dv_t, dy_fed_back = dinputs
                dx_rows.append(dx_t)
                dv = dv + dv_t
            else:
                d_sent_up, dh[l] = dinputs
    return xp_of(dy).stack(dx_rows[::-1], axis=1), dv, grads
