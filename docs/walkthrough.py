# %% [markdown]
# # The paper's equations, run one group at a time
#
# For each group of equations: build the layer, run its forward pass, check its backward
# pass against central differences (`tinynet/gradcheck.py`), print the worst relative error
# of every tensor, then break the backward on purpose and watch the check fail.
#
# Run it as a script (`python docs/walkthrough.py`), or open it as a notebook: the `# %%`
# markers are cells for VS Code, and `jupytext --to notebook docs/walkthrough.py` makes an
# `.ipynb`. The derivations are in `docs/equations.md`; one digit through the whole model
# is in `docs/walkthrough.md`.
#
# The accelerators are switched off (`TINYNET_NUMPY=1`, before tinynet is imported), so the
# code checked is the plain NumPy code of `tinynet/functional/`, the code you read.

# %%
import os

os.environ.setdefault("TINYNET_NUMPY", "1")

import numpy as np  # noqa: E402

import tinynet.functional.conv as conv  # noqa: E402
import tinynet.functional.decoder as decoder  # noqa: E402
import tinynet.functional.rnn as rnn  # noqa: E402
from tinynet.functional.activations import relu_backward, relu_forward, tanh_backward, tanh_forward  # noqa: E402
from tinynet.functional.dense import dense_backward, dense_forward  # noqa: E402
from tinynet.functional.losses import l2_penalty, rmse_loss  # noqa: E402
from tinynet.functional.lstm import lstm_step_backward, lstm_step_forward  # noqa: E402
from tinynet.functional.pool import maxpool2d_backward, maxpool2d_forward  # noqa: E402
from tinynet.gradcheck import check_gradients, in_long_double  # noqa: E402
from tinynet.layers import LSTMDecoder  # noqa: E402

BOUND = 1e-6  # worst relative error allowed, float64 against central differences (eps 1e-6)
rng = np.random.default_rng(0)
broken_caught = []


def show(title, errors):
    """Print the worst relative error of each checked tensor."""
    print(f"\n{title}: passed (bound {BOUND:.0e})")
    for name, error in errors.items():
        print(f"  {name:<12} worst rel. error {error:.1e}")


def must_fail(title, check):
    """Run a gradient check of a deliberately broken backward: it must raise."""
    try:
        check()
    except AssertionError as failure:
        print(f"\n{title}: FAILED as expected\n{failure}")
        broken_caught.append(title)
        return
    raise RuntimeError(f"{title}: the gradient check did not see the broken backward")


# %% [markdown]
# ## Eq. (7): the fully connected layer and tanh (the thought vector)
#
# `z = y W + b`, `v = tanh(z)`. Backward: `dz = dv * (1 - v^2)`, `dy = dz W^T`,
# `dW = y^T dz`, `db = sum over rows of dz` (the matrix product's gradient, derived by
# index in equations.md).

# %%
y, W, b = rng.standard_normal((3, 6)), 0.5 * rng.standard_normal((6, 4)), rng.standard_normal(4)


def thought_vector():
    z, _ = dense_forward(y, W, b)
    return tanh_forward(z)[0]


z, dense_cache = dense_forward(y, W, b)
v, _ = tanh_forward(z)
dv = rng.standard_normal(v.shape)  # a random upstream gradient: an all-ones one hides transpositions
dz, _ = tanh_backward(dv, v)
dy, grads = dense_backward(dz, dense_cache)
print("v:", v.shape, "dy:", dy.shape, "dW:", grads["W"].shape)
show("eq. (7) dense + tanh", check_gradients(thought_vector, {"y": y, "W": W, "b": b}, {"y": dy, **grads}, dv,
                                             bound=BOUND))

# %% [markdown]
# Broken: forget tanh's slope and pass `dv` straight to the dense layer.

# %%
dy_broken, grads_broken = dense_backward(dv, dense_cache)
must_fail("eq. (7) without tanh's slope",
          lambda: check_gradients(thought_vector, {"y": y, "W": W, "b": b}, {"y": dy_broken, **grads_broken}, dv,
                                  bound=BOUND))

# %% [markdown]
# ## Eq. (5): the convolution, im2col and col2im
#
# The forward lays every window out as a column (`im2col`) and makes one matrix product.
# The backward's input gradient puts every column back where its window was read
# (`col2im`), and where windows overlap, their contributions must **add**.
#
# `col2im` written as a loop over windows, beside tinynet's (strided-view) version:

# %%
def col2im_loop(cols, x_shape, kh, kw, stride, pad, add=True):
    N, C, H, W = x_shape
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    dx = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    blocks = cols.reshape(C, kh, kw, N, Ho, Wo)
    for h in range(Ho):
        for w in range(Wo):
            window = dx[:, :, h * stride:h * stride + kh, w * stride:w * stride + kw]
            if add:
                window += blocks[..., h, w].transpose(3, 0, 1, 2)
            else:
                window[...] = blocks[..., h, w].transpose(3, 0, 1, 2)  # the bug: = where += is needed
    return dx[:, :, pad:pad + H, pad:pad + W]


x, W, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
cols = rng.standard_normal((3 * 3 * 3, 2 * 4 * 3))  # the columns of 7x6 images, 3x3 windows, stride 2, pad 1
assert np.allclose(col2im_loop(cols, x.shape, 3, 3, 2, 1), conv.col2im(cols, x.shape, 3, 3, 2, 1))

y, conv_cache = conv.conv2d_forward(x, W, b, stride=2, pad=1)
dy = rng.standard_normal(y.shape)
dx, grads = conv.conv2d_backward(dy, conv_cache)
print("x:", x.shape, "y:", y.shape, "columns:", conv.im2col(x, 3, 3, 2, 1).shape)


def convolution():
    return conv.conv2d_forward(x, W, b, stride=2, pad=1)[0]


show("eq. (5) conv2d", check_gradients(convolution, {"x": x, "W": W, "b": b}, {"x": dx, **grads}, dy, bound=BOUND))

# %% [markdown]
# Broken: `col2im` with `=` instead of `+=`, swapped into the conv module for one backward.

# %%
correct_col2im = conv.col2im
conv.col2im = lambda *args: col2im_loop(*args, add=False)
try:
    dx_broken, _ = conv.conv2d_backward(dy, conv_cache)
finally:
    conv.col2im = correct_col2im
must_fail("eq. (5) with col2im assigning", lambda: check_gradients(convolution, {"x": x}, {"x": dx_broken}, dy,
                                                                  bound=BOUND))

# %% [markdown]
# ## Eq. (6) and (16): max pooling and ReLU
#
# Each window's gradient goes to its maximum only, and a pixel that wins several
# overlapping windows receives the sum of their gradients. Inputs are distinct values
# 0.1 apart, so no perturbation changes a winner.

# %%
x = 0.1 * rng.permutation(2 * 2 * 7 * 9).reshape(2, 2, 7, 9)


def maxpool_backward_loop(dy, x, size, stride, add=True):
    dx = np.zeros_like(x)
    for n, c, h, w in np.ndindex(*dy.shape):
        window = x[n, c, h * stride:h * stride + size, w * stride:w * stride + size]
        p, q = np.unravel_index(np.argmax(window), window.shape)
        if add:
            dx[n, c, h * stride + p, w * stride + q] += dy[n, c, h, w]
        else:
            dx[n, c, h * stride + p, w * stride + q] = dy[n, c, h, w]  # the bug
    return dx


for size, stride in ((3, 2), (2, 2)):
    y, pool_cache = maxpool2d_forward(x, size, stride)
    dy = rng.standard_normal(y.shape)
    dx, _ = maxpool2d_backward(dy, pool_cache)
    assert np.allclose(dx, maxpool_backward_loop(dy, x, size, stride))
    pool = lambda: maxpool2d_forward(x, size, stride)[0]  # noqa: E731
    show(f"eq. (6) max pool {size}x{size}, stride {stride}", check_gradients(pool, {"x": x}, {"x": dx}, dy,
                                                                            bound=BOUND))
    dx_broken = maxpool_backward_loop(dy, x, size, stride, add=False)
    if size > stride:
        must_fail(f"eq. (6) {size}x{size}, stride {stride}, with = instead of +=",
                  lambda: check_gradients(pool, {"x": x}, {"x": dx_broken}, dy, bound=BOUND))
    else:
        # windows that do not overlap never write a pixel twice: here the bug is invisible
        errors = check_gradients(pool, {"x": x}, {"x": dx_broken}, dy, bound=BOUND)
        print(f"  with = instead of +=, windows not overlapping: still passes ({errors['x']:.1e}); test overlaps too")

x = rng.uniform(-2, 2, (3, 7))
x[np.abs(x) < 0.1] += 0.3  # away from the kink at 0
y, _ = relu_forward(x)
dy = rng.standard_normal(y.shape)
show("eq. (16) ReLU", check_gradients(lambda: relu_forward(x)[0], {"x": x}, {"x": relu_backward(dy, y)[0]}, dy,
                                      bound=BOUND))

# %% [markdown]
# ## Eqs. (1) and (2): the RNN through time
#
# Walking t = T-1 .. 0, the gradient on h_t is the one from above plus `dh_next`, the
# gradient that step t+1 sent back to its h_{t-1}. Recurrent checks recompute the forward
# in long double (`in_long_double`): float64 round-off, divided by eps, would otherwise
# blur the smallest gradients.

# %%
N, T, D, H = 2, 4, 3, 5
x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
Wx, Wh, b = 0.5 * rng.standard_normal((D, H)), 0.5 * rng.standard_normal((H, H)), rng.standard_normal(H)
h, rnn_cache = rnn.rnn_forward(x, h0, Wx, Wh, b)
dh = rng.standard_normal(h.shape)
dx, dh0, grads = rnn.rnn_backward(dh, rnn_cache)
arrays = {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}
rnn_sequence = in_long_double(lambda *a: rnn.rnn_forward(*a)[0], *arrays.values())
show("eq. (1) RNN, BPTT over 4 steps", check_gradients(rnn_sequence, arrays, {"x": dx, "h0": dh0, **grads}, dh,
                                                       bound=BOUND))

# %% [markdown]
# Broken: a step's backward that forgets to send the gradient back to h_{t-1}, so nothing
# is carried through time.

# %%
correct_step_backward = rnn.rnn_step_backward


def step_backward_without_carry(dh, cache):
    dx, dh_prev, grads = correct_step_backward(dh, cache)
    return dx, 0 * dh_prev, grads


rnn.rnn_step_backward = step_backward_without_carry
try:
    dx_broken, dh0_broken, grads_broken = rnn.rnn_backward(dh, rnn_cache)
finally:
    rnn.rnn_step_backward = correct_step_backward
must_fail("eq. (1) without dh_next", lambda: check_gradients(
    rnn_sequence, arrays, {"x": dx_broken, "h0": dh0_broken, **grads_broken}, dh, bound=BOUND))

# %% [markdown]
# ## Eqs. (8) to (13): one LSTM step
#
# The bottom layer's step reads x_t, h_{t-1}, v and y_{t-1}. The checked output is (h_t,
# c_t) with a random upstream gradient on both, so both carries are exercised.

# %%
N, H, D, V = 3, 4, 5, 2
inputs = (rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, V)),
          rng.standard_normal((N, D)))
weights = tuple(0.5 * rng.standard_normal((part.shape[1], 4 * H)) for part in inputs)
b, c_prev = rng.standard_normal(4 * H), rng.standard_normal((N, H))
names = ("x", "h_prev", "v", "y_prev", "c_prev", "Wx", "Wh", "Wv", "Wy", "b")
arrays = dict(zip(names, (*inputs, c_prev, *weights, b)))


def lstm_step(x, h_prev, v, y_prev, c_prev, Wx, Wh, Wv, Wy, b, literal_eq13=False):
    h, c, cache = lstm_step_forward((x, h_prev, v, y_prev), c_prev, (Wx, Wh, Wv, Wy), b, literal_eq13)
    return h, c, cache


h, c, step_cache = lstm_step(*arrays.values())
dh, dc = rng.standard_normal(h.shape), rng.standard_normal(c.shape)
dinputs, dc_prev, dweights, db = lstm_step_backward(dh, dc, step_cache)
analytic = dict(zip(names, (*dinputs, dc_prev, *dweights, db)))
step_output = in_long_double(lambda *a: np.concatenate(lstm_step(*a)[:2], axis=1), *arrays.values())
upstream = np.concatenate([dh, dc], axis=1)
print("gates a:", (N, 4 * H), "h, c:", h.shape, c.shape)
show("eqs. (8)-(13) LSTM step", check_gradients(step_output, arrays, analytic, upstream, bound=BOUND))

# %% [markdown]
# Broken: eq. (13) differentiated with i_t where the forward used o_t. The backward of the
# printed form (h = i tanh c) applied to the standard forward (h = o tanh c): same gates,
# same c_t, another h_t.

# %%
_, _, printed_cache = lstm_step(*arrays.values(), literal_eq13=True)
dinputs, dc_prev, dweights, db = lstm_step_backward(dh, dc, printed_cache)
must_fail("eq. (13) with i_t for o_t in the backward", lambda: check_gradients(
    step_output, arrays, dict(zip(names, (*dinputs, dc_prev, *dweights, db))), upstream, bound=BOUND))

# %% [markdown]
# ## Eq. (14) and eqs. (3), (4): the decoder through time
#
# `tinynet/functional/decoder.py`: three LSTM layers over T = 4 rows; the bottom layer
# reads x_t, v and y_{t-1}; y_t = sigmoid(h^top_t W_out + b_out) is fed back. The backward
# walks t = T-1 .. 0 and l = top .. 0 carrying dh_next[l], dc_next[l] and dy_fed_back.

# %%
N, T, D, V, H, L = 2, 4, 5, 3, 3, 3
# the parameters as the decoder layer initialises them: layer0/{Wx, Wh, Wv, Wy, b},
# layer{1, 2}/{Wx, Wh, b}, out/{W, b}; every gate weight (inputs, 4H), gate blocks i, f, g, o
params = LSTMDecoder(D, V, H, L, rng=rng, dtype=np.float64).params
print({name: value.shape for name, value in params.items()})
x_rows, v = rng.standard_normal((N, T, D)), rng.standard_normal((N, V))
arrays = {"x_rows": x_rows, "v": v, **params}


def run_decoder(x_rows, v, *values):
    return decoder.decoder_forward(x_rows, v, dict(zip(params, values)))[0]


y, decoder_cache = decoder.decoder_forward(x_rows, v, params)
dy = rng.standard_normal(y.shape)
dx_rows, dv, grads = decoder.decoder_backward(dy, decoder_cache)
decoder_output = in_long_double(run_decoder, *arrays.values())
print("y:", y.shape, "dx_rows:", dx_rows.shape, "dv:", dv.shape)
show("eq. (14) decoder, BPTT", check_gradients(decoder_output, arrays, {"x_rows": dx_rows, "v": dv, **grads}, dy,
                                               bound=BOUND))

# %% [markdown]
# Broken: a step backward that drops the cell-state carry dc_next (the LSTM's "gradient
# highway"), swapped into the decoder module for one backward.

# %%
correct_lstm_step_backward = decoder.lstm_step_backward
decoder.lstm_step_backward = lambda dh, dc, cache: correct_lstm_step_backward(dh, 0 * dc, cache)
try:
    dx_broken, dv_broken, grads_broken = decoder.decoder_backward(dy, decoder_cache)
finally:
    decoder.lstm_step_backward = correct_lstm_step_backward
must_fail("eq. (14) without dc_next", lambda: check_gradients(
    decoder_output, arrays, {"x_rows": dx_broken, "v": dv_broken, **grads_broken}, dy, bound=BOUND))

# %% [markdown]
# The whole model adds an encoder that makes v from the image (eq. 3), so the image reaches
# the loss twice: row by row (`dx_rows`) and through v (`dv`, then the encoder's backward).
# Its gradient is the sum of both paths (eq. 4); `tests/tinynet/test_encoder_decoder.py`
# checks that end to end.
#
# ## Eqs. (15) and (17): the loss
#
# RMSE over all n elements, `dL/dy_hat = (y_hat - y) / (n L)`; the L2 penalty's gradient
# is `2 lambda w`.

# %%
y_hat, target = rng.uniform(0, 1, (3, 4, 5)), rng.uniform(0, 1, (3, 4, 5))
loss, dy_hat = rmse_loss(y_hat, target)
print("RMSE:", float(loss))
show("eq. (15) RMSE", check_gradients(lambda: rmse_loss(y_hat, target)[0], {"y_hat": y_hat}, {"y_hat": dy_hat},
                                      bound=BOUND))
must_fail("eq. (15) with the MSE gradient (the root forgotten)", lambda: check_gradients(
    lambda: rmse_loss(y_hat, target)[0], {"y_hat": y_hat}, {"y_hat": 2 * (y_hat - target) / y_hat.size},
    bound=BOUND))
weights = {"W1": rng.standard_normal((3, 4)), "W2": rng.standard_normal((2, 5))}
penalty, l2_grads = l2_penalty(weights, 1e-3)
show("eq. (17) L2", check_gradients(lambda: l2_penalty(weights, 1e-3)[0], weights, l2_grads, bound=BOUND))

# %%
print(f"\n{len(broken_caught)} broken backward passes, each caught by its gradient check.")
