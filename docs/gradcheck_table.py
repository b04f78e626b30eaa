"""The "worst error" table of docs/equations.md, measured: `python -m docs.gradcheck_table`.

One gradient check per equation group on tiny, odd shapes (float64 analytic gradients
against central differences, eps 1e-6, a random upstream gradient; tinynet/gradcheck.py),
run on the plain NumPy reference: TINYNET_NUMPY=1 is set before tinynet is imported, so the
code checked is the code docs/equations.md shows, not an accelerator. The recurrent checks
recompute their forward in long double (tinynet.gradcheck.in_long_double), as the tests do.

Each row prints the worst relative error over every tensor of its check as the next power
of ten above it ("< 1e-9"): the exact digits depend on the BLAS's summation order, the
decade does not. tests/test_docs.py checks that the table in docs/equations.md is what this
command prints.
"""

import math
import os

os.environ.setdefault("TINYNET_NUMPY", "1")

import numpy as np  # noqa: E402

from tinynet.functional.activations import (  # noqa: E402
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from tinynet.functional.conv import conv2d_backward, conv2d_forward  # noqa: E402
from tinynet.functional.decoder import decoder_backward, decoder_forward  # noqa: E402
from tinynet.functional.dense import dense_backward, dense_forward  # noqa: E402
from tinynet.functional.losses import l2_penalty, rmse_loss  # noqa: E402
from tinynet.functional.lstm import lstm_step_backward, lstm_step_forward  # noqa: E402
from tinynet.functional.pool import maxpool2d_backward, maxpool2d_forward  # noqa: E402
from tinynet.functional.rnn import (  # noqa: E402
    rnn_backward,
    rnn_forward,
    rnn_output_backward,
    rnn_output_forward,
    rnn_step_backward,
    rnn_step_forward,
)
from tinynet.gradcheck import check_gradients, in_long_double, layer_in_long_double, wide_float  # noqa: E402
from tinynet.layers import Dense, Layer, LSTMDecoder, Sequential, Tanh  # noqa: E402

BOUND = 1e-6
START, END = "<!-- gradcheck-table: start -->", "<!-- gradcheck-table: end -->"


def _rnn_step(rng):
    N, D, H = 3, 4, 5
    x, h_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    Wx, Wh, b = 0.5 * rng.standard_normal((D, H)), 0.5 * rng.standard_normal((H, H)), rng.standard_normal(H)
    h, cache = rnn_step_forward(x, h_prev, Wx, Wh, b)
    dh = rng.standard_normal(h.shape)
    dx, dh_prev, grads = rnn_step_backward(dh, cache)
    f = in_long_double(lambda *a: rnn_step_forward(*a)[0], x, h_prev, Wx, Wh, b)
    return check_gradients(f, {"x": x, "h_prev": h_prev, "Wx": Wx, "Wh": Wh, "b": b},
                           {"x": dx, "h_prev": dh_prev, **grads}, dh, bound=BOUND)


def _rnn_bptt(rng):
    N, T, D, H = 2, 4, 3, 5
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    Wx, Wh, b = 0.5 * rng.standard_normal((D, H)), 0.5 * rng.standard_normal((H, H)), rng.standard_normal(H)
    h, cache = rnn_forward(x, h0, Wx, Wh, b)
    dh = rng.standard_normal(h.shape)
    dx, dh0, grads = rnn_backward(dh, cache)
    f = in_long_double(lambda *a: rnn_forward(*a)[0], x, h0, Wx, Wh, b)
    return check_gradients(f, {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b},
                           {"x": dx, "h0": dh0, **grads}, dh, bound=BOUND)


def _rnn_output(rng):
    h, Wy, by = rng.standard_normal((2, 4, 5)), 0.5 * rng.standard_normal((5, 3)), rng.standard_normal(3)
    y, cache = rnn_output_forward(h, Wy, by)
    dy = rng.standard_normal(y.shape)
    dh, grads = rnn_output_backward(dy, cache)
    f = in_long_double(lambda *a: rnn_output_forward(*a)[0], h, Wy, by)
    return check_gradients(f, {"h": h, "Wy": Wy, "by": by}, {"h": dh, **grads}, dy, bound=BOUND)


class _TinyEncoderDecoder(Layer):
    """Eqs. (3), (4): a dense + tanh encoder makes v from the image; a 2-layer decoder reads v
    and the image's rows."""

    def __init__(self, rng, dtype, rows=4, cols=5, thought=3, hidden=3):
        super().__init__()
        self.encoder = Sequential([("fc", Dense(rows * cols, thought, rng, dtype=dtype)), ("tanh", Tanh())])
        self.decoder = LSTMDecoder(cols, thought, hidden, 2, rng=rng, dtype=dtype)

    def children(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def forward(self, image, train=False):
        return self.decoder.forward(image, self.encoder.forward(image.reshape(len(image), -1)))

    def backward(self, dy):
        dx_rows, dv = self.decoder.backward(dy)
        return dx_rows + self.encoder.backward(dv).reshape(dx_rows.shape)


def _encoder_decoder(rng):
    model = _TinyEncoderDecoder(rng, np.float64)
    twin = _TinyEncoderDecoder(np.random.default_rng(0), wide_float())
    clean = rng.uniform(0, 1, (3, 4, 5))
    image = clean.copy()
    image[:, 2:] = 0
    image += 0.1 * rng.standard_normal(image.shape)
    _, dy = rmse_loss(model.forward(image), clean)
    dimage = model.backward(dy)
    f = layer_in_long_double(lambda m, image, clean: rmse_loss(m.forward(image), clean)[0], model, twin, image, clean)
    return check_gradients(f, {"image": image, **model.named_params()},
                           {"image": dimage, **model.named_grads()}, bound=BOUND)


def _conv(rng):
    x, W, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    y, cache = conv2d_forward(x, W, b, stride=2, pad=1)
    dy = rng.standard_normal(y.shape)
    dx, grads = conv2d_backward(dy, cache)
    return check_gradients(lambda: conv2d_forward(x, W, b, stride=2, pad=1)[0], {"x": x, "W": W, "b": b},
                           {"x": dx, **grads}, dy, bound=BOUND)


def _maxpool(rng):
    x = 0.1 * rng.permutation(2 * 2 * 7 * 9).reshape(2, 2, 7, 9).astype(np.float64)  # distinct, 0.1 apart
    y, cache = maxpool2d_forward(x, size=3, stride=2)
    dy = rng.standard_normal(y.shape)
    dx, _ = maxpool2d_backward(dy, cache)
    return check_gradients(lambda: maxpool2d_forward(x, size=3, stride=2)[0], {"x": x}, {"x": dx}, dy, bound=BOUND)


def _dense_tanh(rng):
    x, W, b = rng.standard_normal((3, 6)), 0.5 * rng.standard_normal((6, 4)), rng.standard_normal(4)

    def forward():
        z, _ = dense_forward(x, W, b)
        return tanh_forward(z)[0]

    z, cache = dense_forward(x, W, b)
    v, _ = tanh_forward(z)
    dv = rng.standard_normal(v.shape)
    dx, grads = dense_backward(tanh_backward(dv, v)[0], cache)
    return check_gradients(forward, {"x": x, "W": W, "b": b}, {"x": dx, **grads}, dv, bound=BOUND)


def _lstm_step(rng, literal_eq13):
    N, H, D, V = 3, 4, 5, 2
    inputs = (rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, V)),
              rng.standard_normal((N, D)))
    weights = tuple(0.5 * rng.standard_normal((x.shape[1], 4 * H)) for x in inputs)
    b, c_prev = rng.standard_normal(4 * H), rng.standard_normal((N, H))

    def forward(x, h_prev, v, y_prev, c_prev, Wx, Wh, Wv, Wy, b):
        h, c, _ = lstm_step_forward((x, h_prev, v, y_prev), c_prev, (Wx, Wh, Wv, Wy), b, literal_eq13)
        return np.concatenate([h, c], axis=1)

    h, c, cache = lstm_step_forward(inputs, c_prev, weights, b, literal_eq13)
    dh, dc = rng.standard_normal(h.shape), rng.standard_normal(c.shape)
    dinputs, dc_prev, dweights, db = lstm_step_backward(dh, dc, cache)
    names = ("x", "h_prev", "v", "y_prev")
    arrays = {**dict(zip(names, inputs)), "c_prev": c_prev,
              **dict(zip(("Wx", "Wh", "Wv", "Wy"), weights)), "b": b}
    analytic = {**dict(zip(names, dinputs)), "c_prev": dc_prev, **dict(zip(("Wx", "Wh", "Wv", "Wy"), dweights)),
                "b": db}
    if literal_eq13:  # the output gate does not reach h: its columns get no gradient (eq. 13 as printed)
        for key in ("Wx", "Wh", "Wv", "Wy", "b"):
            assert not np.any(analytic[key][..., 3 * H:])
    f = in_long_double(forward, *arrays.values())
    return check_gradients(f, arrays, analytic, np.concatenate([dh, dc], axis=1), bound=BOUND)


def _decoder_bptt(rng, literal_eq13):
    N, T, D, V, H, L = 2, 4, 5, 3, 3, 3
    params = LSTMDecoder(D, V, H, L, rng=rng, dtype=np.float64).params  # the layer's initialisation
    params["out/b"] = rng.standard_normal(D)
    x_rows, v = rng.standard_normal((N, T, D)), rng.standard_normal((N, V))
    y, cache = decoder_forward(x_rows, v, params, literal_eq13=literal_eq13)
    dy = rng.standard_normal(y.shape)
    dx_rows, dv, grads = decoder_backward(dy, cache)

    def forward(x_rows, v, *values):
        return decoder_forward(x_rows, v, dict(zip(params, values)), literal_eq13=literal_eq13)[0]

    f = in_long_double(forward, x_rows, v, *params.values())
    return check_gradients(f, {"x_rows": x_rows, "v": v, **params}, {"x_rows": dx_rows, "v": dv, **grads}, dy,
                           bound=BOUND)


def _rmse(rng):
    y_hat, y = rng.uniform(0, 1, (3, 4, 5)), rng.uniform(0, 1, (3, 4, 5))
    _, dy_hat = rmse_loss(y_hat, y)
    return check_gradients(lambda: rmse_loss(y_hat, y)[0], {"y_hat": y_hat}, {"y_hat": dy_hat}, bound=BOUND)


def _activations(rng):
    x = rng.uniform(-2, 2, (3, 7))
    x[np.abs(x) < 0.1] += 0.3  # away from ReLU's kink
    worst = {}
    for name, forward, backward in (("relu", relu_forward, relu_backward),
                                    ("sigmoid", sigmoid_forward, sigmoid_backward),
                                    ("tanh", tanh_forward, tanh_backward)):
        y, _ = forward(x)
        dy = rng.standard_normal(y.shape)
        errors = check_gradients(lambda: forward(x)[0], {"x": x}, {"x": backward(dy, y)[0]}, dy, bound=BOUND)
        worst[name] = errors["x"]
    return worst


def _l2(rng):
    weights = {"W1": rng.standard_normal((3, 4)), "W2": rng.standard_normal((2, 5))}
    lam = 1e-3
    _, grads = l2_penalty(weights, lam)
    return check_gradients(lambda: l2_penalty(weights, lam)[0], weights, grads, bound=BOUND)


# (equation, what is checked, function under test, check)
CHECKS = (
    ("1", "RNN step (sigmoid), N 3, D 4, H 5", "rnn_step_forward/backward", _rnn_step),
    ("1", "RNN through time, T 4", "rnn_forward/backward", _rnn_bptt),
    ("2", "RNN output row over all steps", "rnn_output_forward/backward", _rnn_output),
    ("3, 4, 15", "image -> dense + tanh encoder -> 2-layer decoder -> RMSE; both image paths",
     "LSTMDecoder, Dense, Tanh, rmse_loss", _encoder_decoder),
    ("5", "conv 3x2 kernel, stride 2, pad 1 on 7x6 images", "conv2d_forward/backward", _conv),
    ("6", "max pool 3x3, stride 2 (overlapping), distinct values", "maxpool2d_forward/backward", _maxpool),
    ("7", "dense + tanh (the thought vector)", "dense_*, tanh_*", _dense_tanh),
    ("8-13", "one LSTM step, four inputs, standard eq. 13", "lstm_step_forward/backward",
     lambda rng: _lstm_step(rng, False)),
    ("8-13", "one LSTM step, eq. 13 as printed", "lstm_step_forward/backward", lambda rng: _lstm_step(rng, True)),
    ("14", "3-layer decoder, T 4, H 3, through time and y_{t-1}", "decoder_forward/backward",
     lambda rng: _decoder_bptt(rng, False)),
    ("14", "the same, eq. 13 as printed", "decoder_forward/backward", lambda rng: _decoder_bptt(rng, True)),
    ("15", "RMSE of a (3, 4, 5) batch", "rmse_loss", _rmse),
    ("16", "ReLU, sigmoid, tanh", "relu_*, sigmoid_*, tanh_*", _activations),
    ("17", "L2 penalty of two weights", "l2_penalty", _l2),
)


def decade(error):
    """The next power of ten above `error`, as '< 1e-9' (exact zero: '0')."""
    if error == 0:
        return "0"
    return f"< 1e{math.floor(math.log10(error)) + 1}"


def table(seed=0):
    """The markdown table, one row per check."""
    lines = ["| eq. | what is checked | code | tensors | worst relative error |",
             "| --- | --- | --- | --- | --- |"]
    for equation, what, code, check in CHECKS:
        errors = check(np.random.default_rng(seed))
        lines.append(f"| {equation} | {what} | `{code}` | {len(errors)} | {decade(max(errors.values()))} |")
    return "\n".join(lines)


def main():
    print(table())


if __name__ == "__main__":
    main()
