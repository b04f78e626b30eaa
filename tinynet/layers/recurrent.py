"""Recurrent layers: the plain RNN of section 3 (eqs. 1, 2) and the multi-layer LSTM decoder
with direct attention of section 4.2.2 (eqs. 8-14, Figure 3)."""

import numpy as np

from .. import init
from ..backend import xp_of
from ..functional.decoder import decoder_backward, decoder_forward
from ..functional.dropout import MaskSource, dropout_mask
from ..functional.rnn import rnn_backward, rnn_forward, rnn_output_backward, rnn_output_forward
from .base import Layer


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
    that draws an image row by row (tinynet.functional.decoder, eqs. 8-14).

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

    forward/backward call tinynet.functional.decoder, whose accelerated twin (the buffered
    decoder of tinynet.accel, through tinynet.dispatch) serves float32 and float64 arrays.
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

    def forward(self, x_rows, v, train=False):
        """x_rows: (N, T, row_size) corrupted rows, v: (N, thought_size) -> y (N, T, row_size)."""
        N, T, _ = x_rows.shape
        masks = None
        if train and self.dropout > 0:
            masks = self._dropout_masks(xp_of(x_rows), (self.num_layers, T, N, self.hidden_size),
                                        self.params["out/W"].dtype)
        y, self.cache = decoder_forward(x_rows, v, self.params, masks, self.literal_eq13)
        return y

    def backward(self, dy):
        """dy: (N, T, row_size) -> dx_rows (N, T, row_size), dv (N, thought_size); sets grads."""
        dx_rows, dv, self.grads = decoder_backward(dy, self.cache)
        return dx_rows, dv

    def backward_through_time(self, dy, side):
        """backward(dy), where the weight gradients may be left to `side`
        (tinynet.dispatch.side_stream): `grads` is complete once the caller has joined it."""
        dx_rows, dv, self.grads = decoder_backward(dy, self.cache, side)
        return dx_rows, dv
