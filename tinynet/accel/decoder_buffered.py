"""The accelerated twin of tinynet.functional.decoder: the same decoder with direct
attention (eqs. 8-14) and its backpropagation through time, shaped for speed, on any
device (NumPy or CuPy arrays of float32 or float64).

- The bottom layer's products with x_t and v, which do not depend on the recurrence, are
  made for all steps at once (`a_fixed`).
- Per step and layer a single product remains: [h^l_{t-1}, input from below, 1] @
  [W^h; W^y or W^x; b], the bias being the weight of a constant input. Those step inputs
  live in time-major (T, N, ...) buffers that the previous step writes into directly
  (its h into the next step's row, its output through dropout into the row of the layer
  above).
- The pre-activation gradients of the backward sweep live in (T, N, ...) buffers too, so
  every weight gradient, the bias's included, is one product over all T*N rows after the
  sweep; that work may go to a side executor (on the GPU a second stream, beside the
  encoder's backward: tinynet.dispatch.side_stream).
- The work of one step (a layer's product and cell, the output row, each way) is four
  functions below, each an @accelerated reference of one fused GPU kernel
  (tinynet.accel.gpu.fused): over a 28-row image and 5 layers that is 140 steps strictly
  one after another, where four to six small kernels per step would dominate.

The cache is a BufferedDecoderCache, which only this module's backward accepts.
"""

from ..backend import xp_of
from ..dispatch import accelerated
from ..functional.activations import sigmoid
from ..functional.decoder import num_layers
from ..functional.lstm import lstm_cell_backward, lstm_cell_forward
from ..functional.matmul import matmul


@accelerated
def lstm_cell_forward_over_input(a, c_prev, literal_eq13=False):
    """lstm_cell_forward, whose kernels may write the activated gates over `a` (here a
    temporary of the step) instead of into a new array."""
    return lstm_cell_forward(a, c_prev, literal_eq13)


@accelerated
def lstm_cell_backward_into(dh, dc, cache, da_out):
    """lstm_cell_backward with da written into `da_out` (N, 4H); returns (da_out, dc_prev)."""
    da, dc_prev = lstm_cell_backward(dh, dc, cache)
    da_out[...] = da
    return da_out, dc_prev


@accelerated
def lstm_layer_step_forward(step_input, W, c_prev, a_fixed, mask, h_out, up_out, literal_eq13=False):
    """a = step_input W (+ a_fixed), eqs. (8)-(13), then h_out <- h and up_out <- h * mask.

    step_input: (N, K); W: (K, 4H) in gate blocks i, f, g, o; c_prev: (N, H).
    a_fixed: (N, 4H) gate terms computed beforehand (the bottom layer's x_t and v terms), or
    None. mask: (N, H) inverted-dropout mask of the upward connection, or None (no dropout).
    h_out: (N, H) view to receive h (the next step's input), or None at the last step.
    up_out: (N, H) view to receive h * mask.
    Returns c (N, H) and the cell's cache (tinynet.functional.lstm.lstm_cell_forward).
    """
    a = matmul(step_input, W)
    if a_fixed is not None:
        a += a_fixed
    h, c, cache = lstm_cell_forward_over_input(a, c_prev, literal_eq13)
    if h_out is not None:
        h_out[...] = h
    up_out[...] = h if mask is None else h * mask
    return c, cache


@accelerated
def lstm_layer_step_backward(d_up, mask, dh_next, dc_next, cache, W_input_T, da_out):
    """Backward of lstm_layer_step_forward.

    d_up: (N, H) gradient w.r.t. up_out; dh_next, dc_next: (N, H) gradients carried back
    from step t+1 (zeros at the last step); W_input_T: (4H, K-1), the transpose of W without
    its bias row (the constant input gets no gradient); da_out: (N, 4H), receives the
    pre-activation gradient (kept for the weight gradients).
    Returns the gradient w.r.t. the step input without its constant column (N, K-1), whose
    first H columns are dh_next of step t-1, and dc_prev (N, H).
    """
    dh = (d_up if mask is None else d_up * mask) + dh_next
    da, dc_prev = lstm_cell_backward_into(dh, dc_next, cache, da_out)
    return matmul(da, W_input_T), dc_prev


@accelerated
def output_row_forward(top, W, b, y_out, feedback_out):
    """Eq. (14), y_t = sigmoid(top W + b), into y_out, and into feedback_out (the bottom
    layer's y_{t-1} of the next step) unless it is None.

    top: (N, H); W: (H, D); b: (D,); y_out: (N, D).
    """
    y_out[...] = sigmoid(matmul(top, W) + b)
    if feedback_out is not None:
        feedback_out[...] = y_out


@accelerated
def output_row_backward(dy, dy_fed_back, y, W, dz_out):
    """Backward of eq. (14) for one row: dz = (dy + dy_fed_back) y (1 - y) into dz_out.

    dy: (N, D) gradient from the loss; dy_fed_back: (N, D) gradient that step t+1 sent back
    through y_t (zeros at the last step); y: (N, D); W: (H, D); dz_out: (N, D).
    Returns the gradient w.r.t. top, dz W^T (N, H).
    """
    dz_out[...] = dy + dy_fed_back
    dz_out *= y * (1 - y)
    return matmul(dz_out, W.T)


def _all_steps(a):
    """(T, N, K) -> (T*N, K): the rows of every step, for one product over all of them."""
    return a.reshape(-1, a.shape[-1])


def step_weights(params):
    """Per layer, [W^h; W^y; b] (bottom) or [W^h; W^x; b]: the weights of the per-step
    inputs [h^l_{t-1}, y_{t-1}, 1] or [h^l_{t-1}, h^{l-1}_t, 1]."""
    xp = xp_of(params["out/W"])
    return [xp.concatenate([params[f"layer{l}/Wh"], params["layer0/Wy" if l == 0 else f"layer{l}/Wx"],
                            params[f"layer{l}/b"][None]])
            for l in range(num_layers(params))]


class BufferedDecoderCache:
    """What decoder_backward needs of decoder_forward: the buffers, the cells' caches, the
    masks and the stacked weights; after a backward also its sweep's gradient buffers,
    which stay referenced until the cache is dropped (side work may still read them)."""

    def __init__(self, params, x_seq, v, step_inputs, top, y, cell_caches, masks, W_step):
        self.params, self.x_seq, self.v = params, x_seq, v
        self.step_inputs, self.top, self.y = step_inputs, top, y
        self.cell_caches, self.masks, self.W_step = cell_caches, masks, W_step
        self.sweep = None


def decoder_forward(x_rows, v, params, masks=None, literal_eq13=False):
    """tinynet.functional.decoder.decoder_forward, buffered (see the module)."""
    xp = xp_of(x_rows)
    N, T, D = x_rows.shape
    L, H = num_layers(params), params["layer0/Wh"].shape[0]
    dtype = params["out/W"].dtype
    W_step = step_weights(params)

    x_seq = xp.ascontiguousarray(x_rows.transpose(1, 0, 2))  # time-major: (T, N, D)
    # bottom layer's terms that do not depend on the recurrence, for all steps at once
    a_fixed = matmul(x_seq.reshape(T * N, D), params["layer0/Wx"]).reshape(T, N, 4 * H)
    a_fixed += matmul(v, params["layer0/Wv"])
    # per layer the step inputs [h^l_{t-1}, other, 1]; h_0 = 0 and y_0 = 0
    step_inputs = [xp.empty((T, N, H + (D if l == 0 else H) + 1), dtype) for l in range(L)]
    for X in step_inputs:
        X[0, :, :H] = 0
        X[:, :, -1] = 1
    step_inputs[0][0, :, H:-1] = 0
    top = xp.empty((T, N, H), dtype)  # input of the output layer, after dropout
    y = xp.empty((T, N, D), dtype)
    c = [xp.zeros((N, H), dtype) for _ in range(L)]
    cell_caches = [[None] * T for _ in range(L)]

    for t in range(T):
        for l in range(L):
            c[l], cell_caches[l][t] = lstm_layer_step_forward(
                step_inputs[l][t], W_step[l], c[l], a_fixed[t] if l == 0 else None,
                None if masks is None else masks[l, t],
                step_inputs[l][t + 1, :, :H] if t + 1 < T else None,
                step_inputs[l + 1][t, :, H:-1] if l + 1 < L else top[t],
                literal_eq13)
        # eq. (14), fed back as the bottom layer's y_{t-1} of the next step
        output_row_forward(top[t], params["out/W"], params["out/b"], y[t],
                           step_inputs[0][t + 1, :, H:-1] if t + 1 < T else None)
    cache = BufferedDecoderCache(params, x_seq, v, step_inputs, top, y, cell_caches, masks, W_step)
    return xp.ascontiguousarray(y.transpose(1, 0, 2)), cache


def decoder_backward(dy, cache, side=None):
    """tinynet.functional.decoder.decoder_backward, buffered: the sweep t = T-1 .. 0 carries
    dh and dc per layer, and the bottom layer hands the gradient w.r.t. y_{t-1} to the output
    of step t-1; the weight gradients follow the sweep, on `side` when given (its join()
    completes them). Declines every cache but a BufferedDecoderCache."""
    if not isinstance(cache, BufferedDecoderCache):
        return NotImplemented
    params, y = cache.params, cache.y
    xp = xp_of(dy)
    T, N, D = y.shape
    L, H = len(cache.W_step), params["layer0/Wh"].shape[0]
    dtype = y.dtype
    dy_seq = xp.ascontiguousarray(dy).transpose(1, 0, 2)
    da_all = [xp.empty((T, N, 4 * H), dtype) for _ in range(L)]
    dz_all = xp.empty((T, N, D), dtype)  # gradients of eq. (14)'s pre-activation
    cache.sweep = (da_all, dz_all)
    dh_next = [xp.zeros((N, H), dtype) for _ in range(L)]
    dc_next = [xp.zeros((N, H), dtype) for _ in range(L)]
    dy_fed_back = xp.zeros((N, D), dtype)
    # the step weights without the bias row (the constant input gets no gradient), transposed
    W_input_T = [xp.ascontiguousarray(W[:-1].T) for W in cache.W_step]

    for t in reversed(range(T)):
        d_up = output_row_backward(dy_seq[t], dy_fed_back, y[t], params["out/W"], dz_all[t])
        for l in reversed(range(L)):
            d_step_input, dc_next[l] = lstm_layer_step_backward(
                d_up, None if cache.masks is None else cache.masks[l, t], dh_next[l], dc_next[l],
                cache.cell_caches[l][t], W_input_T[l], da_all[l][t])
            dh_next[l], d_up = d_step_input[:, :H], d_step_input[:, H:]
        dy_fed_back = d_up  # the bottom layer's other step input is y_{t-1}
    grads = {}
    if side is None:
        grads.update(_weight_gradients(cache))
    else:
        side.run(lambda: grads.update(_weight_gradients(cache)))

    # the bottom layer's x and v terms for all steps at once (v is the same at every step)
    da_bottom = da_all[0].reshape(T * N, 4 * H)
    dx_rows = matmul(da_bottom, params["layer0/Wx"].T).reshape(T, N, D).transpose(1, 0, 2)
    return xp.ascontiguousarray(dx_rows), matmul(da_all[0].sum(axis=0), params["layer0/Wv"].T), grads


def _weight_gradients(cache):
    """The weight gradients of the last sweep: each, the bias's included, one product over
    all T*N rows of the step inputs and pre-activation gradients."""
    da_all, dz_all = cache.sweep
    H = cache.params["layer0/Wh"].shape[0]
    grads = {"out/W": matmul(_all_steps(cache.top).T, _all_steps(dz_all)), "out/b": _all_steps(dz_all).sum(axis=0),
             "layer0/Wx": matmul(_all_steps(cache.x_seq).T, _all_steps(da_all[0])),
             "layer0/Wv": matmul(cache.v.T, da_all[0].sum(axis=0))}
    for l, (X, da) in enumerate(zip(cache.step_inputs, da_all)):
        dW = matmul(_all_steps(X).T, _all_steps(da))
        grads.update({f"layer{l}/Wh": dW[:H], ("layer0/Wy" if l == 0 else f"layer{l}/Wx"): dW[H:-1],
                      f"layer{l}/b": dW[-1]})
    return grads
