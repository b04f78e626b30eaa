"""Eqs. (8)-(13): the LSTM cell; eq. (14) and full BPTT: the decoder with direct attention.

Float64 gradient checks with random upstream gradients. The cell's checks perturb each
gate's columns of all four weights (x W^x, h W^h, v W^v, y W^y) and every input; the
decoder's check covers every weight, the image rows and the thought vector, through the
fed-back outputs y_{t-1}. Every test runs twice: on the plain reference alone
(tinynet.functional.lstm and .decoder, dispatch.reference_only) and with the accelerated
twins the dispatch picks (the Numba cell, the buffered decoder).
"""

import numpy as np
import pytest

from tinynet import dispatch
from tinynet.backend import to_numpy
from tinynet.functional.lstm import (
    lstm_backward,
    lstm_cell_forward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
)
from tinynet.gradcheck import check_gradients, in_long_double, layer_in_long_double
from tinynet.layers import LSTMDecoder
from tinynet.shapes import gate_blocks

# worst relative error allowed: float64 analytic gradients against central differences
# (eps 1e-6) of the same forward recomputed in long double (tinynet.gradcheck.in_long_double);
# where long double is no wider than float64, norm-wise against gradcheck.FLOAT64_NORMWISE_BOUND
BOUND = 1e-6
N, D, V, H = 3, 5, 4, 7  # batch, row (x and y) size, thought vector size, hidden size
INPUTS = ("x", "h_prev", "v", "y_prev")  # the four terms of eqs. (8)-(11)
GATES = "ifgo"  # contiguous blocks of the 4H gate columns


@pytest.fixture(autouse=True, params=["reference", "twins"])
def path(request):
    """Run the test on the plain reference alone, or with the accelerated twins."""
    if request.param == "reference":
        with dispatch.reference_only():
            yield request.param
    else:
        yield request.param


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def random_step(xp, rng):
    """Inputs (x_t, h_{t-1}, v, y_{t-1}), c_{t-1}, weights (W^x, W^h, W^v, W^y), b."""
    sizes = (D, H, V, D)
    inputs = tuple(xp.asarray(rng.standard_normal((N, size))) for size in sizes)
    c_prev = xp.asarray(rng.standard_normal((N, H)))
    # scaled by 1/sqrt(fan-in of all four terms): unsaturated gates
    weights = tuple(xp.asarray(rng.standard_normal((size, 4 * H)) / np.sqrt(sum(sizes))) for size in sizes)
    b = xp.asarray(rng.standard_normal(4 * H))
    return inputs, c_prev, weights, b


def gates_by_hand(inputs, weights, b):
    """Eqs. (8)-(11) written out per gate, in NumPy: {'i': ..., 'f': ..., 'g': ..., 'o': ...}."""
    inputs, weights, b = [to_numpy(x) for x in inputs], [to_numpy(W) for W in weights], to_numpy(b)
    gates = {}
    for k, gate in enumerate(GATES):
        block = slice(k * H, (k + 1) * H)
        a = sum(x @ W[:, block] for x, W in zip(inputs, weights)) + b[block]
        gates[gate] = np.tanh(a) if gate == "g" else sigmoid(a)
    return gates


def implemented_gates(inputs, c_prev, weights, b):
    """The gates as lstm_cell_forward computes them (the activated gates of its cache)."""
    a = sum(x @ W for x, W in zip(inputs, weights)) + b
    _, _, (gates, *_) = lstm_cell_forward(a, c_prev)
    return dict(zip(GATES, (to_numpy(block) for block in gate_blocks(gates))))


def check_step_gradients(xp, rng, gate=None, literal_eq13=False, through_h=True):
    """Gradient check of one step w.r.t. every input, c_{t-1} and the weights' columns of
    `gate` (all columns when None). The upstream gradient reaches c_t, and h_t unless
    through_h is False."""
    inputs, c_prev, weights, b = random_step(xp, rng)
    dh = xp.asarray(rng.standard_normal((N, H))) if through_h else xp.zeros((N, H))
    dc = xp.asarray(rng.standard_normal((N, H)))
    _, _, cache = lstm_step_forward(inputs, c_prev, weights, b, literal_eq13)
    dinputs, dc_prev, dweights, db = lstm_step_backward(dh, dc, cache)

    def forward(x, h_prev, v, y_prev, c_prev, Wx, Wh, Wv, Wy, b):
        h, c, _ = lstm_step_forward((x, h_prev, v, y_prev), c_prev, (Wx, Wh, Wv, Wy), b, literal_eq13)
        return np.concatenate([h, c], axis=1)

    columns, label = slice(None), ""
    if gate is not None:
        k = GATES.index(gate)
        columns, label = slice(k * H, (k + 1) * H), f"[{gate}]"
    arrays = {**dict(zip(INPUTS, inputs)), "c_prev": c_prev, f"b{label}": b[columns]}
    analytic = {**dict(zip(INPUTS, dinputs)), "c_prev": dc_prev, f"b{label}": db[columns]}
    for name, W, dW in zip(INPUTS, weights, dweights):
        arrays[f"W_{name}{label}"] = W[:, columns]  # a view: the check perturbs W itself
        analytic[f"W_{name}{label}"] = dW[:, columns]
    return check_gradients(in_long_double(forward, *inputs, c_prev, *weights, b), arrays, analytic,
                           xp.concatenate([dh, dc], axis=1), bound=BOUND)


def check_gate(xp, rng, gate):
    """The gate's block of the activated gates against its equation written out by hand,
    then the gradients of its columns of every weight, and of every input."""
    inputs, c_prev, weights, b = random_step(xp, rng)
    np.testing.assert_allclose(implemented_gates(inputs, c_prev, weights, b)[gate],
                               gates_by_hand(inputs, weights, b)[gate], rtol=1e-12)
    check_step_gradients(xp, rng, gate=gate)


def test_eq08_input_gate(xp, rng):
    """i_t = sigmoid(x W^xi + h W^hi + v W^vi + y W^yi + b^i), block 0."""
    check_gate(xp, rng, "i")


def test_eq09_forget_gate(xp, rng):
    """f_t = sigmoid(x W^xf + h W^hf + v W^vf + y W^yf + b^f), block 1."""
    check_gate(xp, rng, "f")


def test_eq10_output_gate(xp, rng):
    """o_t = sigmoid(x W^xo + h W^ho + v W^vo + y W^yo + b^o), block 3."""
    check_gate(xp, rng, "o")


def test_eq11_new_state_tanh(xp, rng):
    """C~_t = g_t = tanh(x W^xc + h W^hc + v W^vc + y W^yc + b^c), block 2."""
    check_gate(xp, rng, "g")


def test_eq12_cell_state(xp, rng):
    """c_t = f c_{t-1} + i g; its gradient alone (dh = 0) reaches c_{t-1}, every input and weight."""
    inputs, c_prev, weights, b = random_step(xp, rng)
    _, c, _ = lstm_step_forward(inputs, c_prev, weights, b)
    gate = gates_by_hand(inputs, weights, b)
    np.testing.assert_allclose(to_numpy(c), gate["f"] * to_numpy(c_prev) + gate["i"] * gate["g"], rtol=1e-12)
    check_step_gradients(xp, rng, through_h=False)


@pytest.mark.parametrize("literal_eq13", [False, True], ids=["standard", "as-printed"])
def test_eq13_hidden_state_both_forms(xp, rng, literal_eq13):
    """h_t = o tanh(c_t) (standard), or i tanh(c_t) as the paper prints it; whole-step gradients
    carrying both dh and dc. In the printed form the output gate's columns get no gradient."""
    inputs, c_prev, weights, b = random_step(xp, rng)
    h, c, cache = lstm_step_forward(inputs, c_prev, weights, b, literal_eq13)
    gate = gates_by_hand(inputs, weights, b)
    expected_c = gate["f"] * to_numpy(c_prev) + gate["i"] * gate["g"]
    np.testing.assert_allclose(to_numpy(h), gate["i" if literal_eq13 else "o"] * np.tanh(expected_c), rtol=1e-12)

    dh = xp.asarray(rng.standard_normal((N, H)))
    dweights = lstm_step_backward(dh, xp.zeros_like(dh), cache)[2]
    for dW in dweights:
        assert bool(xp.all(gate_blocks(dW)[3] == 0)) == literal_eq13
    check_step_gradients(xp, rng, literal_eq13=literal_eq13)


@pytest.mark.parametrize("literal_eq13", [False, True], ids=["standard", "as-printed"])
def test_eq12_eq13_lstm_sequence_bptt_gradients(xp, rng, literal_eq13):
    """lstm_forward / lstm_backward: one layer over T steps, dh and dc carried back through
    time; gradients w.r.t. the inputs, h_0 and the three parameters."""
    T_SEQ = 4
    x = xp.asarray(rng.standard_normal((N, T_SEQ, D)))
    h0 = xp.asarray(rng.standard_normal((N, H)))
    Wx = xp.asarray(rng.standard_normal((D, 4 * H)) / np.sqrt(D + H))
    Wh = xp.asarray(rng.standard_normal((H, 4 * H)) / np.sqrt(D + H))
    b = xp.asarray(rng.standard_normal(4 * H))
    dh = xp.asarray(rng.standard_normal((N, T_SEQ, H)))
    h, cache = lstm_forward(x, h0, Wx, Wh, b, literal_eq13)
    assert h.shape == (N, T_SEQ, H)
    dx, dh0, grads = lstm_backward(dh, cache)
    forward = lambda x, h0, Wx, Wh, b: lstm_forward(x, h0, Wx, Wh, b, literal_eq13)[0]  # noqa: E731
    check_gradients(in_long_double(forward, x, h0, Wx, Wh, b), {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b},
                    {"x": dx, "h0": dh0, **grads}, dh, bound=BOUND)


# --- the decoder with direct attention: eq. (14), feedback of y_{t-1}, full BPTT ----------

T, H_DEC, LAYERS = 4, 3, 3  # steps (image rows), decoder hidden size, layers (a middle one too)


def decoder_pair(rng, **options):
    """A float64 decoder and its long double twin (for the numerical side of the checks)."""
    config = dict(row_size=D, thought_size=V, hidden_size=H_DEC, num_layers=LAYERS, **options)
    return (LSTMDecoder(**config, rng=rng, dtype=np.float64),
            LSTMDecoder(**config, rng=np.random.default_rng(0), dtype=np.longdouble))


def rows_and_thought(xp, rng):
    return xp.asarray(rng.uniform(0, 1, (N, T, D))), xp.asarray(rng.standard_normal((N, V)))


def decoder_by_steps(decoder, x_rows, v):
    """Figure 3 written step by step with lstm_step_forward (no dropout), in NumPy: the
    bottom gates read (x_t, h_{t-1}, v, y_{t-1}), layer l reads (h^{l-1}_t, h^l_{t-1}), and
    y_t = sigmoid(h^L_t W_out + b_out) (eq. 14) is fed back as the next y_{t-1}."""
    p = {key: to_numpy(value) for key, value in decoder.params.items()}
    x_rows, v = to_numpy(x_rows), to_numpy(v)
    L = decoder.num_layers
    h = [np.zeros((N, decoder.hidden_size))] * L
    c = list(h)
    y_prev, ys = np.zeros((N, D)), []
    for t in range(x_rows.shape[1]):
        for l in range(L):
            if l == 0:
                inputs = (x_rows[:, t], h[0], v, y_prev)
                weights = tuple(p[f"layer0/{key}"] for key in ("Wx", "Wh", "Wv", "Wy"))
            else:
                inputs, weights = (h[l - 1], h[l]), (p[f"layer{l}/Wx"], p[f"layer{l}/Wh"])
            h[l], c[l], _ = lstm_step_forward(inputs, c[l], weights, p[f"layer{l}/b"], decoder.literal_eq13)
        y_prev = sigmoid(h[-1] @ p["out/W"] + p["out/b"])
        ys.append(y_prev)
    return np.stack(ys, axis=1)


@pytest.mark.parametrize("literal_eq13", [False, True], ids=["standard", "as-printed"])
def test_eq14_decoder_output_matches_step_by_step(xp, rng, literal_eq13):
    """The decoder's hoisted products and buffers compute exactly Figure 3's recurrence,
    feeding back its own outputs (not the targets)."""
    decoder, _ = decoder_pair(rng, literal_eq13=literal_eq13)
    decoder.to(xp)
    x_rows, v = rows_and_thought(xp, rng)
    np.testing.assert_allclose(to_numpy(decoder.forward(x_rows, v)), decoder_by_steps(decoder, x_rows, v), rtol=1e-12)


@pytest.mark.parametrize("literal_eq13", [False, True], ids=["standard", "as-printed"])
def test_eq14_decoder_bptt_gradients(xp, rng, literal_eq13):
    """Eqs. (8)-(14) through time: the output layer, every LSTM weight, the image rows and
    v, with the gradient also flowing back through each fed-back output y_{t-1}."""
    decoder, twin = decoder_pair(rng, literal_eq13=literal_eq13)
    decoder.to(xp)
    x_rows, v = rows_and_thought(xp, rng)
    dy = xp.asarray(rng.standard_normal((N, T, D)))
    decoder.forward(x_rows, v, train=True)
    dx_rows, dv = decoder.backward(dy)
    f = layer_in_long_double(lambda model, x_rows, v: model.forward(x_rows, v), decoder, twin, x_rows, v)
    check_gradients(f, {"x_rows": x_rows, "v": v, **decoder.named_params()},
                    {"x_rows": dx_rows, "v": dv, **decoder.named_grads()}, dy, bound=BOUND)


def test_eq14_decoder_bptt_gradients_with_dropout(xp, rng):
    """The same check in training mode with the paper's 25 % dropout going up: the masks
    are re-drawn from the same seed at every call, so the function is fixed. The long double
    twin (NumPy) draws the GPU's counter-based numbers, so that on the GPU it drops the same units."""
    decoder, twin = decoder_pair(rng, dropout=0.25)
    decoder.masks.counter_on_cpu = twin.masks.counter_on_cpu = True
    decoder.to(xp)
    x_rows, v = rows_and_thought(xp, rng)
    dy = xp.asarray(rng.standard_normal((N, T, D)))

    def forward(model, x_rows, v):
        model.seed_dropout(7)
        return model.forward(x_rows, v, train=True)

    forward(decoder, x_rows, v)
    dx_rows, dv = decoder.backward(dy)
    f = layer_in_long_double(forward, decoder, twin, x_rows, v)
    check_gradients(f, {"x_rows": x_rows, "v": v, **decoder.named_params()},
                    {"x_rows": dx_rows, "v": dv, **decoder.named_grads()}, dy, bound=BOUND)


def test_decoder_dropout_train_only_fresh_masks(xp, rng):
    decoder, _ = decoder_pair(rng, dropout=0.5)
    decoder.to(xp)
    x_rows, v = rows_and_thought(xp, rng)
    # evaluation: no dropout at all
    np.testing.assert_allclose(to_numpy(decoder.forward(x_rows, v)), decoder_by_steps(decoder, x_rows, v), rtol=1e-12)
    # training: inverted-dropout masks, a fresh one per step and per forward
    y1, y2 = to_numpy(decoder.forward(x_rows, v, train=True)), to_numpy(decoder.forward(x_rows, v, train=True))
    assert not np.allclose(y1, y2)
    masks = to_numpy(decoder._dropout_masks(xp, (LAYERS, 50, 20, H_DEC), np.float64))
    assert set(np.unique(masks)) == {0.0, 2.0}
    assert abs((masks == 0).mean() - 0.5) < 0.05
    assert not np.array_equal(masks[:, 0], masks[:, 1])


def test_decoder_float32_stays_float32(xp, rng):
    decoder = LSTMDecoder(D, V, H_DEC, LAYERS, rng=rng, dropout=0.25).to(xp)
    x_rows, v = (a.astype(np.float32) for a in rows_and_thought(xp, rng))
    y = decoder.forward(x_rows, v, train=True)
    dx_rows, dv = decoder.backward(xp.ones_like(y))
    assert {y.dtype, dx_rows.dtype, dv.dtype} == {np.dtype(np.float32)}
    assert {g.dtype for g in decoder.named_grads().values()} == {np.dtype(np.float32)}


def test_decoder_params_layer_api(xp, rng):
    decoder = LSTMDecoder(D, V, H_DEC, 2, rng=rng).to(xp)
    params = decoder.named_params("decoder/")
    assert list(params) == [f"decoder/{key}" for key in (
        "layer0/Wx", "layer0/Wh", "layer0/Wv", "layer0/Wy", "layer0/b",
        "layer1/Wx", "layer1/Wh", "layer1/b", "out/W", "out/b")]
    assert [tuple(params[f"decoder/layer0/{key}"].shape) for key in ("Wx", "Wh", "Wv", "Wy", "b")] == [
        (D, 4 * H_DEC), (H_DEC, 4 * H_DEC), (V, 4 * H_DEC), (D, 4 * H_DEC), (4 * H_DEC,)]
    assert not any(key.endswith("/b") for key in decoder.named_weights())
    b = to_numpy(params["decoder/layer1/b"])
    np.testing.assert_array_equal(gate_blocks(b)[1], 1.0)  # forget gates start open
    assert not gate_blocks(b)[0].any()
    x_rows, v = rows_and_thought(xp, rng)
    decoder.forward(x_rows, v, train=True)
    decoder.backward(xp.ones((N, T, D)))
    assert set(decoder.named_grads()) == set(decoder.named_params())


def test_eq14_decoder_matches_torch(rng):
    """The same recurrence written with torch autograd: outputs and every gradient agree."""
    torch = pytest.importorskip("torch", reason="torch is not installed (the bench extra)")
    decoder, _ = decoder_pair(rng)
    x_rows, v = rows_and_thought(np, rng)
    dy = rng.standard_normal((N, T, D))
    y = decoder.forward(x_rows, v)
    dx_rows, dv = decoder.backward(dy)

    p = {key: torch.tensor(value, requires_grad=True) for key, value in decoder.params.items()}
    x_t, v_t = torch.tensor(x_rows, requires_grad=True), torch.tensor(v, requires_grad=True)
    h = [torch.zeros(N, H_DEC, dtype=torch.float64)] * LAYERS
    c = list(h)
    y_prev, ys = torch.zeros(N, D, dtype=torch.float64), []
    for t in range(T):
        for l in range(LAYERS):
            a = (x_t[:, t] @ p["layer0/Wx"] + v_t @ p["layer0/Wv"] + y_prev @ p["layer0/Wy"] if l == 0
                 else h[l - 1] @ p[f"layer{l}/Wx"]) + h[l] @ p[f"layer{l}/Wh"] + p[f"layer{l}/b"]
            i, f, g, o = a.chunk(4, dim=1)  # PyTorch's gate order
            c[l] = torch.sigmoid(f) * c[l] + torch.sigmoid(i) * torch.tanh(g)
            h[l] = torch.sigmoid(o) * torch.tanh(c[l])
        y_prev = torch.sigmoid(h[-1] @ p["out/W"] + p["out/b"])
        ys.append(y_prev)
    y_torch = torch.stack(ys, dim=1)
    (y_torch * torch.tensor(dy)).sum().backward()

    np.testing.assert_allclose(y, y_torch.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dx_rows, x_t.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dv, v_t.grad.numpy(), rtol=1e-10, atol=1e-14)
    for key, grad in decoder.grads.items():
        np.testing.assert_allclose(grad, p[key].grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=key)
