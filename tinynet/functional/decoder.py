"""The per-step work of the decoder with direct attention (section 4.2.2, Figure 3): one
step of one LSTM layer, and the output row of eq. (14), each with its backward.

The decoder (tinynet.layers.recurrent.LSTMDecoder) keeps every step's input in a buffer
row [h^l_{t-1}, input from below, 1], so one layer's step is one product with the stacked
weights W = [W^h; W^x (or W^y); b] followed by the cell of eqs. (8)-(13); its h then goes
to two places: the layer's own next step input, and (after dropout) the input of the
layer or output above. Over a 28-row image and 5 layers that is 140 such steps, strictly
one after another, so on the GPU each of the four functions below is one fused kernel
(tinynet.kernels.cuda_fused) instead of four to six small ones. The NumPy code here is
their reference twin and the CPU path.
"""

from ..backend import xp_of
from ..kernels import gpu_kernels_one_dtype
from .activations import sigmoid
from .lstm import lstm_cell_backward, lstm_cell_forward
from .matmul import matmul


def lstm_layer_step_forward(step_input, W, c_prev, a_fixed, mask, h_out, up_out, literal_eq13=False):
    """a = step_input W (+ a_fixed), eqs. (8)-(13), then h_out <- h and up_out <- h * mask.

    step_input: (N, K) C-contiguous; W: (K, 4H) in gate blocks i, f, g, o; c_prev: (N, H).
    a_fixed: (N, 4H) gate terms computed beforehand (the bottom layer's x_t and v terms), or
    None. mask: (N, H) inverted-dropout mask of the upward connection, or None (no dropout).
    h_out: (N, H) view to receive h (the next step's input), or None at the last step.
    up_out: (N, H) view to receive h * mask.
    Returns c (N, H) and the cell's cache (tinynet.functional.lstm.lstm_cell_forward).
    """
    kernels = gpu_kernels_one_dtype(step_input, W, c_prev, up_out)
    if kernels is not None and step_input.flags.c_contiguous and W.flags.c_contiguous:
        return kernels.lstm_layer_step_forward(step_input, W, c_prev, a_fixed, mask, h_out, up_out, literal_eq13)
    a = matmul(step_input, W)
    if a_fixed is not None:
        a += a_fixed
    h, c, cache = lstm_cell_forward(a, c_prev, literal_eq13)
    if h_out is not None:
        h_out[...] = h
    if mask is None:
        up_out[...] = h
    else:
        xp_of(h).multiply(h, mask, out=up_out)
    return c, cache


def lstm_layer_step_backward(d_up, mask, dh_next, dc_next, cache, W_input_T, da_out):
    """Backward of lstm_layer_step_forward.

    d_up: (N, H) gradient w.r.t. up_out; dh_next, dc_next: (N, H) gradients carried back
    from step t+1 (zeros at the last step); W_input_T: (4H, K-1), the transpose of W without
    its bias row (the constant input gets no gradient); da_out: (N, 4H), receives the
    pre-activation gradient (kept for the weight gradients).
    Returns the gradient w.r.t. the step input without its constant column (N, K-1), whose
    first H columns are dh_next of step t-1, and dc_prev (N, H).
    """
    kernels = gpu_kernels_one_dtype(d_up, dh_next, dc_next, W_input_T, da_out, cache[0])
    if (kernels is not None and W_input_T.flags.c_contiguous and da_out.flags.c_contiguous
            and cache[0].flags.c_contiguous and kernels.fits_layer_step_backward(d_up)):
        return kernels.lstm_layer_step_backward(d_up, mask, dh_next, dc_next, cache, W_input_T, da_out)
    if mask is None:
        dh = d_up + dh_next
    else:
        dh = d_up * mask
        dh += dh_next
    da, dc_prev = lstm_cell_backward(dh, dc_next, cache, out=da_out)
    return matmul(da, W_input_T), dc_prev


def output_row_forward(top, W, b, y_out, feedback_out):
    """Eq. (14), y_t = sigmoid(top W + b), into y_out, and into feedback_out (the bottom
    layer's y_{t-1} of the next step) unless it is None.

    top: (N, H) C-contiguous; W: (H, D); b: (D,); y_out: (N, D) C-contiguous.
    """
    kernels = gpu_kernels_one_dtype(top, W, b, y_out)
    if kernels is not None and top.flags.c_contiguous and y_out.flags.c_contiguous:
        return kernels.output_row_forward(top, W, b, y_out, feedback_out)
    y_out[...] = sigmoid(matmul(top, W) + b)
    if feedback_out is not None:
        feedback_out[...] = y_out


def output_row_backward(dy, dy_fed_back, y, W, dz_out):
    """Backward of eq. (14) for one row: dz = (dy + dy_fed_back) y (1 - y) into dz_out.

    dy: (N, D) gradient from the loss; dy_fed_back: (N, D) gradient that step t+1 sent back
    through y_t (zeros at the last step); y: (N, D); W: (H, D); dz_out: (N, D) C-contiguous.
    Returns the gradient w.r.t. top, dz W^T (N, H).
    """
    kernels = gpu_kernels_one_dtype(dy, dy_fed_back, y, W, dz_out)
    if kernels is not None and y.flags.c_contiguous and W.flags.c_contiguous and dz_out.flags.c_contiguous:
        return kernels.output_row_backward(dy, dy_fed_back, y, W, dz_out)
    xp_of(dy).add(dy, dy_fed_back, out=dz_out)
    dz_out *= y * (1 - y)
    return matmul(dz_out, W.T)
