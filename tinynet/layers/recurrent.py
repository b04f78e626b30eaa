"""Recurrent layers: the plain RNN of section 3 (eqs. 1, 2) and the multi-layer LSTM decoder
with direct attention of section 4.2.2 (eqs. 8-14, Figure 3)."""

import numpy as np

from .. import init
from ..backend import xp_of
from ..functional.dropout import MaskSource, dropout_mask
from ..functional.decoder import (lstm_layer_step_backward, lstm_layer_step_forward, output_row_backward,
                                  output_row_forward)
from ..functional.matmul import matmul
from ..functional.rnn import rnn_backward, rnn_forward, rnn_output_backward, rnn_output_forward
from ..kernels import beside
from .base import Layer


def _all_steps(a):
    """(T, N, K) -> (T*N, K): the rows of every step, for one product over all of them."""
    return a.reshape(-1, a.shape[-1])


class RNN(Layer):
    """Eqs. (1), (2): h_t = sigma(x_t Wx + h_{t-1} Wh + b), y_t = f(h_t Wy + by), h_0 = 0.

    x: (N, T, input_size) -> y: (N, T, output_size). Eq. (2) is read with the hidden state
    (the paper's w_hx x_t is an erratum for w_hy h_t, see tinynet.functional.rnn).
    """

    weight_keys = ("Wx", "Wh", "Wy")

    def __init__(self, input_size, hidden_size, output_size, rng, activation="sigmoid",
                 output_activation="sigmoid", dtype=np.float32):
        super().__init__()
        self.activation, self.output_activation = activation, output_activation
        self.params = {
            "Wx": init.glorot_uniform(rng, (input_size, hidden_size), input_size, hidden_size, dtype),
            "Wh": init.glorot_uniform(rng, (hidden_size, hidden_size), hidden_size, hidden_size, dtype),
            "b": init.zeros((hidden_size,), dtype),
            "Wy": init.glorot_uniform(rng, (hidden_size, output_size), hidden_size, output_size, dtype),
            "by": init.zeros((output_size,), dtype),
        }

    def forward(self, x, train=False):
        p = self.params
        h0 = xp_of(x).zeros((x.shape[0], p["Wh"].shape[0]), dtype=x.dtype)
        h, self.cache_h = rnn_forward(x, h0, p["Wx"], p["Wh"], p["b"], self.activation)
        y, self.cache_y = rnn_output_forward(h, p["Wy"], p["by"], self.output_activation)
        return y

    def backward(self, dy):
        dh, output_grads = rnn_output_backward(dy, self.cache_y)
        dx, _, self.grads = rnn_backward(dh, self.cache_h)
        self.grads.update(output_grads)
        return dx


class LSTMDecoder(Layer):
    """The decoder with direct attention (section 4.2.2, Figure 3): a stack of LSTM layers
    that draws an image row by row.

    At step t the bottom layer's gates read the corrupted row x_t, its own h_{t-1}, the
    thought vector v and the decoder's previous output row y_{t-1} (eqs. 8-11); layer l > 0
    reads h^{l-1}_t and its own h^l_{t-1}. The output row is (eq. 14)

        y_t = sigmoid(h^L_t W_out + b_out)

    (the paper reuses the name W^{yi} for this matrix; it is the output layer's own) and is
    fed back as y_{t-1} of the next step: the decoder's own output, not the target, and the
    backward pass follows that path too. h, c and y start at 0.

    Dropout (rate `dropout`, inverted) acts on the connections going up: the input of
    layers 2..L and of the output layer, with a fresh mask per step, in training only.

    Params, flat: layer0/{Wx, Wh, Wv, Wy, b}, layer{l}/{Wx, Wh, b} for l >= 1, out/{W, b};
    every W is (inputs, 4H) with gate blocks i, f, g, o; the forget-gate biases start at
    `forget_bias`.

    Speed: the products with x and v are made for all steps at once; per step and layer a
    single product [h^l_{t-1}, input from below, 1] @ [W^h; W^y or W^x; b] remains (the
    bias is the weight of a constant input). Those step inputs and the pre-activation
    gradients live in (T, N, ...) arrays, so every weight gradient, the bias's included, is
    one product over all T*N rows after the backward sweep. The work of one step (a layer's
    product and cell, the output row, each way) is tinynet.functional.decoder: one fused
    kernel per call on the GPU.
    """

    def __init__(self, row_size=28, thought_size=100, hidden_size=128, num_layers=5, *, rng,
                 dropout=0.0, literal_eq13=False, forget_bias=1.0, dtype=np.float32):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.row_size, self.thought_size = row_size, thought_size
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.dropout, self.literal_eq13 = dropout, literal_eq13
        H = hidden_size

        def gate_weights(fan_in):
            return init.glorot_uniform(rng, (fan_in, 4 * H), fan_in, H, dtype)

        def gate_bias():
            b = init.zeros((4 * H,), dtype)
            b[H:2 * H] = forget_bias  # remember by default: gradients survive the early steps
            return b

        for l in range(num_layers):
            inputs = {"Wx": row_size if l == 0 else H, "Wh": H}
            if l == 0:
                inputs.update(Wv=thought_size, Wy=row_size)
            for key, fan_in in inputs.items():
                self.params[f"layer{l}/{key}"] = gate_weights(fan_in)
            self.params[f"layer{l}/b"] = gate_bias()
        self.params["out/W"] = init.glorot_uniform(rng, (H, row_size), H, row_size, dtype)
        self.params["out/b"] = init.zeros((row_size,), dtype)
        self.weight_keys = tuple(key for key in self.params if not key.endswith("/b"))
        self.masks = MaskSource(int(rng.integers(2**31)))

    def seed_dropout(self, seed):
        """Restart the dropout masks from `seed`."""
        self.masks.reseed(seed)

    def _dropout_masks(self, xp, shape, dtype):
        """Inverted-dropout masks for every step and layer at once (functional.dropout)."""
        return dropout_mask(self.masks.generator(xp), shape, self.dropout, dtype)

    def _step_weights(self):
        """Per layer, [W^h; W^y; b] (bottom) or [W^h; W^x; b]: the weights of the per-step
        inputs [h^l_{t-1}, y_{t-1}, 1] or [h^l_{t-1}, h^{l-1}_t, 1]."""
        xp, p = xp_of(self.params["out/W"]), self.params
        return [xp.concatenate([p[f"layer{l}/Wh"], p["layer0/Wy" if l == 0 else f"layer{l}/Wx"],
                                p[f"layer{l}/b"][None]])
                for l in range(self.num_layers)]

    def forward(self, x_rows, v, train=False):
        """x_rows: (N, T, row_size) corrupted rows, v: (N, thought_size) -> y (N, T, row_size)."""
        xp, p = xp_of(x_rows), self.params
        N, T, D = x_rows.shape
        H, L = self.hidden_size, self.num_layers
        dtype = p["out/W"].dtype
        masks = self._dropout_masks(xp, (L, T, N, H), dtype) if train and self.dropout > 0 else None
        W_step = self._step_weights()

        x_seq = xp.ascontiguousarray(x_rows.transpose(1, 0, 2))  # time-major: (T, N, D)
        # bottom layer's terms that do not depend on the recurrence, for all steps at once
        a_fixed = matmul(x_seq.reshape(T * N, D), p["layer0/Wx"]).reshape(T, N, 4 * H)
        a_fixed += matmul(v, p["layer0/Wv"])
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
                    h_out=step_inputs[l][t + 1, :, :H] if t + 1 < T else None,
                    up_out=step_inputs[l + 1][t, :, H:-1] if l + 1 < L else top[t],
                    literal_eq13=self.literal_eq13)
            # eq. (14), fed back as the bottom layer's y_{t-1} of the next step
            output_row_forward(top[t], p["out/W"], p["out/b"], y[t],
                               step_inputs[0][t + 1, :, H:-1] if t + 1 < T else None)
        self.cache = (x_seq, v, step_inputs, top, y, cell_caches, masks, W_step)
        return xp.ascontiguousarray(y.transpose(1, 0, 2))

    def backward(self, dy):
        """dy: (N, T, row_size) -> dx_rows (N, T, row_size), dv (N, thought_size); sets grads."""
        side = beside(dy)
        gradients = self.backward_through_time(dy, side)
        side.join()
        return gradients

    def backward_through_time(self, dy, side):
        """dy -> dx_rows (N, T, row_size), dv (N, thought_size); the weight gradients go to
        `side` (tinynet.kernels.beside), whose join() completes `grads`.

        Walks t = T-1 .. 0; per layer it carries dh and dc to step t-1, and the bottom
        layer hands the gradient w.r.t. y_{t-1} to the output of step t-1. The weight
        gradients follow the sweep on `side` (on the GPU a second stream, beside the
        encoder's backward). The sweep's arrays stay referenced until the next backward, as
        the side work reads them (kernels.cuda_streams). Giving the side the weight
        gradients of every few steps during the sweep was measured too (H200): the
        sweep's small kernels then slowed by more than the products saved.
        """
        x_seq, v, step_inputs, top, y, cell_caches, masks, W_step = self.cache
        xp, p = xp_of(dy), self.params
        T, N, D = y.shape
        H, L = self.hidden_size, self.num_layers
        dtype = y.dtype
        dy_seq = xp.ascontiguousarray(dy).transpose(1, 0, 2)
        da_all = [xp.empty((T, N, 4 * H), dtype) for _ in range(L)]
        dz_all = xp.empty((T, N, D), dtype)  # gradients of eq. (14)'s pre-activation
        self.sweep = (da_all, dz_all)
        dh_next = [xp.zeros((N, H), dtype) for _ in range(L)]
        dc_next = [xp.zeros((N, H), dtype) for _ in range(L)]
        dy_fed_back = xp.zeros((N, D), dtype)
        # the step weights without the bias row (the constant input gets no gradient), transposed
        W_input_T = [xp.ascontiguousarray(W[:-1].T) for W in W_step]

        for t in reversed(range(T)):
            d_up = output_row_backward(dy_seq[t], dy_fed_back, y[t], p["out/W"], dz_all[t])
            for l in reversed(range(L)):
                d_step_input, dc_next[l] = lstm_layer_step_backward(
                    d_up, None if masks is None else masks[l, t], dh_next[l], dc_next[l], cell_caches[l][t],
                    W_input_T[l], da_all[l][t])
                dh_next[l], d_up = d_step_input[:, :H], d_step_input[:, H:]
            dy_fed_back = d_up  # the bottom layer's other step input is y_{t-1}
        side.run(self._weight_gradients)

        # the bottom layer's x and v terms for all steps at once (v is the same at every step)
        da_bottom = da_all[0].reshape(T * N, 4 * H)
        dx_rows = matmul(da_bottom, p["layer0/Wx"].T).reshape(T, N, D).transpose(1, 0, 2)
        return xp.ascontiguousarray(dx_rows), matmul(da_all[0].sum(axis=0), p["layer0/Wv"].T)

    def _weight_gradients(self):
        """`grads` from the last sweep: every weight gradient, the bias's included, is one
        product over all T*N rows of the step inputs and pre-activation gradients."""
        x_seq, v, step_inputs, top, _, _, _, _ = self.cache
        da_all, dz_all = self.sweep
        H = self.hidden_size
        grads = {"out/W": matmul(_all_steps(top).T, _all_steps(dz_all)), "out/b": _all_steps(dz_all).sum(axis=0),
                 "layer0/Wx": matmul(_all_steps(x_seq).T, _all_steps(da_all[0])),
                 "layer0/Wv": matmul(v.T, da_all[0].sum(axis=0))}
        for l, (X, da) in enumerate(zip(step_inputs, da_all)):
            dW = matmul(_all_steps(X).T, _all_steps(da))
            grads.update({f"layer{l}/Wh": dW[:H], ("layer0/Wy" if l == 0 else f"layer{l}/Wx"): dW[H:-1],
                          f"layer{l}/b": dW[-1]})
        self.grads = grads
