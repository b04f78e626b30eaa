"""The buffered decoder (tinynet.accel.decoder_buffered) against the plain reference
(tinynet.functional.decoder, eqs. 8-14): the same outputs and gradients, with and without
dropout masks, in both forms of eq. (13). Normwise relative error (max |twin - reference|
over max |reference|) at most 1e-10 in float64 and 1e-5 in float32."""

import numpy as np
import pytest

from tinynet import dispatch
from tinynet.backend import to_numpy
from tinynet.functional.decoder import decoder_backward, decoder_forward
from tinynet.functional.dropout import dropout_mask
from tinynet.functional.lstm import lstm_cell_backward, lstm_cell_forward
from tinynet.layers import LSTMDecoder

buffered = pytest.importorskip("tinynet.accel.decoder_buffered",
                               reason="the accelerated twins (tinynet.accel) are absent")

N, T, D, V, H, LAYERS = 3, 5, 4, 3, 6, 3
BOUNDS = {np.float64: 1e-10, np.float32: 1e-5}


def normwise_error(actual, expected):
    actual, expected = to_numpy(actual).astype(np.float64), to_numpy(expected).astype(np.float64)
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def decoder_case(xp, rng, dtype, dropout, literal_eq13):
    decoder = LSTMDecoder(D, V, H, LAYERS, rng=rng, literal_eq13=literal_eq13, dtype=dtype).to(xp)
    x_rows = xp.asarray(rng.uniform(0, 1, (N, T, D)).astype(dtype))
    v = xp.asarray(rng.standard_normal((N, V)).astype(dtype))
    dy = xp.asarray(rng.standard_normal((N, T, D)).astype(dtype))
    masks = None
    if dropout:
        masks = xp.asarray(dropout_mask(np.random.default_rng(7), (LAYERS, T, N, H), dropout, dtype))
    return decoder.params, x_rows, v, dy, masks


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("dropout", [0.0, 0.25])
@pytest.mark.parametrize("literal_eq13", [False, True], ids=["standard", "as-printed"])
def test_eq14_buffered_decoder_matches_the_plain_reference(xp, rng, dtype, dropout, literal_eq13):
    params, x_rows, v, dy, masks = decoder_case(xp, rng, dtype, dropout, literal_eq13)
    y, cache = buffered.decoder_forward(x_rows, v, params, masks, literal_eq13)
    assert isinstance(cache, buffered.BufferedDecoderCache)
    dx_rows, dv, grads = buffered.decoder_backward(dy, cache)
    with dispatch.reference_only():
        y_ref, cache_ref = decoder_forward(x_rows, v, params, masks, literal_eq13)
        dx_ref, dv_ref, grads_ref = decoder_backward(dy, cache_ref)
    assert set(grads) == set(grads_ref) == set(params)
    results = {"y": (y, y_ref), "dx_rows": (dx_rows, dx_ref), "dv": (dv, dv_ref),
               **{name: (grads[name], grads_ref[name]) for name in params}}
    for name, (twin, reference) in results.items():
        assert twin.dtype == dtype and twin.shape == reference.shape, name
    errors = {name: normwise_error(*pair) for name, pair in results.items()}
    assert max(errors.values()) <= BOUNDS[dtype], errors


def test_buffered_decoder_leaves_weight_gradients_to_a_side_executor(rng):
    """decoder_backward(dy, cache, side): the weight gradients arrive through side.run, the
    same as without a side executor; the plain reference ignores `side`."""
    params, x_rows, v, dy, masks = decoder_case(np, rng, np.float64, 0.25, False)

    class Recording(dispatch.RunAtOnce):
        calls = 0

        def run(self, fn):
            Recording.calls += 1
            fn()

    _, cache = buffered.decoder_forward(x_rows, v, params, masks)
    _, _, at_once = buffered.decoder_backward(dy, cache)
    _, cache = buffered.decoder_forward(x_rows, v, params, masks)
    _, _, on_side = buffered.decoder_backward(dy, cache, Recording())
    assert Recording.calls == 1
    assert all(np.array_equal(at_once[name], on_side[name]) for name in params)
    with dispatch.reference_only():
        _, cache = decoder_forward(x_rows, v, params, masks)
        assert set(decoder_backward(dy, cache, Recording())[2]) == set(params)
    assert Recording.calls == 1


def test_buffered_backward_declines_a_plain_cache(rng):
    params, x_rows, v, dy, _ = decoder_case(np, rng, np.float64, 0.0, False)
    with dispatch.reference_only():
        _, cache = decoder_forward(x_rows, v, params)
    assert buffered.decoder_backward(dy, cache) is NotImplemented
    decoder_backward(dy, cache)  # the dispatch then runs the reference


@pytest.mark.skipif(not dispatch.ENABLED, reason="TINYNET_NUMPY=1 switches the twins off")
def test_layer_dispatches_float_to_the_buffered_twin_and_long_double_to_the_reference(rng):
    for dtype, cache_type in [(np.float32, buffered.BufferedDecoderCache), (np.longdouble, tuple)]:
        decoder = LSTMDecoder(D, V, H, 2, rng=rng, dtype=dtype)
        decoder.forward(np.ones((N, T, D), dtype), np.ones((N, V), dtype))
        assert isinstance(decoder.cache, cache_type)
        with dispatch.reference_only():
            decoder.forward(np.ones((N, T, D), dtype), np.ones((N, V), dtype))
        assert isinstance(decoder.cache, tuple)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("literal_eq13", [False, True])
def test_buffered_cell_steps_match_the_cell(xp, rng, dtype, literal_eq13):
    """The buffered decoder's cell calls: over its input, and into a given array."""
    a = xp.asarray(rng.standard_normal((4, 4 * H)).astype(dtype))
    c_prev, dh, dc = (xp.asarray(rng.standard_normal((4, H)).astype(dtype)) for _ in range(3))
    with dispatch.reference_only():
        h, c, cache = lstm_cell_forward(a, c_prev, literal_eq13)
        da, dc_prev = lstm_cell_backward(dh, dc, cache)
    h_twin, c_twin, cache_twin = buffered.lstm_cell_forward_over_input(a.copy(), c_prev, literal_eq13)
    da_out = xp.empty_like(da)
    da_twin, dc_prev_twin = buffered.lstm_cell_backward_into(dh, dc, cache_twin, da_out)
    assert da_twin is da_out
    for twin, reference in [(h_twin, h), (c_twin, c), (cache_twin[0], cache[0]), (da_twin, da),
                            (dc_prev_twin, dc_prev)]:
        assert normwise_error(twin, reference) <= BOUNDS[dtype]
