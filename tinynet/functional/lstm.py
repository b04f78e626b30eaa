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

`lstm_cell_*` hold the maths after the matrix products, so that a sequence layer can
compute the products for many steps at once; `lstm_step_*` is the whole step. On the CPU
each cell function is one fused Numba kernel (tinynet.kernels), on the GPU one fused CuPy
kernel, with the NumPy code below as their reference twin.
"""

from ..backend import xp_of
from ..kernels import cpu_kernels, gpu_kernels
from ..shapes import gate_blocks
from .matmul import matmul


def _sigmoid_in_place(x):
    """x <- sigmoid(x) = (tanh(x / 2) + 1) / 2: no overflow and no temporary arrays."""
    x *= 0.5
    xp_of(x).tanh(x, out=x)
    x += 1
    x *= 0.5


def lstm_cell_forward(a, c_prev, literal_eq13=False):
    """Eqs. (8)-(13) from the gate pre-activations.

    a: (N, 4H) pre-activations in blocks i, f, g, o. It is overwritten by the activated
       gates, which become part of the cache (so no copy is made).
    c_prev: (N, H) cell state c_{t-1}.
    Returns h (N, H), c (N, H), cache.
    """
    gates = a
    kernels = cpu_kernels(a, c_prev) or gpu_kernels(a, c_prev)
    if kernels is not None:
        h, c, tanh_c = kernels.lstm_cell_forward(gates, c_prev, literal_eq13)
        return h, c, (gates, c_prev, tanh_c, literal_eq13)
    xp = xp_of(a)
    i, f, g, o = gate_blocks(gates)
    g_new = xp.tanh(g)  # eq. (11)
    # eqs. (8)-(10): the sigmoid over the whole contiguous array (faster than over three
    # strided blocks), then the g block gets its tanh back
    _sigmoid_in_place(gates)
    g[...] = g_new
    c = f * c_prev  # eq. (12)
    c += i * g
    tanh_c = xp.tanh(c)
    h = (i if literal_eq13 else o) * tanh_c  # eq. (13)
    return h, c, (gates, c_prev, tanh_c, literal_eq13)


def lstm_cell_backward(dh, dc, cache, out=None):
    """Backward of eqs. (8)-(13) down to the pre-activations.

    dh: (N, H) gradient w.r.t. h_t (from the layer above plus from step t+1).
    dc: (N, H) gradient w.r.t. c_t carried back from step t+1.
    out: optional (N, 4H) array to write da into.
    Returns da (N, 4H), dc_prev (N, H).
    """
    gates, c_prev, tanh_c, literal_eq13 = cache
    xp = xp_of(gates)
    da = xp.empty_like(gates) if out is None else out
    kernels = cpu_kernels(dh, dc, gates, da) or gpu_kernels(dh, dc, gates, da)
    if kernels is not None:
        return kernels.lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, literal_eq13, da)
    i, f, g, o = gate_blocks(gates)
    da_i, da_f, da_g, da_o = gate_blocks(da)
    # eq. (13), h = u tanh(c) with u = o (or i as printed): c_t gets dh's share too
    dc = dc + dh * (i if literal_eq13 else o) * (1 - tanh_c * tanh_c)
    # eq. (12), c = f c_prev + i g: gradients w.r.t. the gates' outputs
    xp.multiply(dc, g, out=da_i)
    xp.multiply(dc, c_prev, out=da_f)
    xp.multiply(dc, i, out=da_g)
    if literal_eq13:
        da_i += dh * tanh_c
        da_o.fill(0)  # the output gate does not reach the loss in the printed eq. (13)
    else:
        xp.multiply(dh, tanh_c, out=da_o)
    # eqs. (8)-(11): times the slopes, sigmoid' = s - s^2 (i, f, o) and tanh' = 1 - g^2,
    # computed on the whole contiguous array (faster than strided blocks)
    slope = gates * gates
    xp.subtract(gates, slope, out=slope)
    xp.subtract(1, g * g, out=gate_blocks(slope)[2])
    da *= slope
    return da, dc * f


def lstm_step_forward(inputs, c_prev, weights, b, literal_eq13=False):
    """One LSTM step whose gates are fed by several inputs, eqs. (8)-(13).

    inputs: tuple of (N, D_k) arrays, e.g. (x_t, h_prev) or (x_t, h_prev, v, y_prev).
    c_prev: (N, H); weights: tuple of (D_k, 4H) arrays, one per input; b: (4H,).
    Returns h (N, H), c (N, H), cache.
    """
    a = matmul(inputs[0], weights[0])
    for x, W in zip(inputs[1:], weights[1:]):
        a += matmul(x, W)
    a += b
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
