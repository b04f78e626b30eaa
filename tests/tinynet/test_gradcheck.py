"""tinynet.gradcheck where np.longdouble is no wider than float64 (simulated here by
monkeypatching): the long double checks fall back to a norm-wise bound on float64
numerics instead of being skipped, and that bound still catches a wrong gradient."""

import numpy as np
import pytest

from tinynet import gradcheck
from tinynet.gradcheck import check_gradients, in_long_double, layer_in_long_double, normwise_error
from tinynet.layers import LSTMDecoder

N, T, D, V, H, LAYERS = 3, 4, 5, 4, 3, 3


@pytest.fixture
def float64_only(monkeypatch):
    """A platform whose np.longdouble is float64."""
    monkeypatch.setattr(gradcheck, "long_double_is_wider", lambda: False)
    assert gradcheck.wide_float() is np.float64


def decoder_check(rng, wrong=0.0):
    """The 3-layer decoder's BPTT check (tests/tinynet/test_lstm.py) with a float64 twin;
    `wrong` shifts one weight gradient by that fraction of its largest element."""
    config = dict(row_size=D, thought_size=V, hidden_size=H, num_layers=LAYERS)
    decoder = LSTMDecoder(**config, rng=rng, dtype=np.float64)
    twin = LSTMDecoder(**config, rng=np.random.default_rng(0), dtype=gradcheck.wide_float())
    x_rows, v = rng.uniform(0, 1, (N, T, D)), rng.standard_normal((N, V))
    dy = rng.standard_normal((N, T, D))
    decoder.forward(x_rows, v, train=True)
    dx_rows, dv = decoder.backward(dy)
    grads = decoder.named_grads()
    grads["layer1/Wh"] = grads["layer1/Wh"] + wrong * np.abs(grads["layer1/Wh"]).max() * (
        np.arange(grads["layer1/Wh"].size).reshape(grads["layer1/Wh"].shape) == 3)
    f = layer_in_long_double(lambda model, x_rows, v: model.forward(x_rows, v), decoder, twin, x_rows, v)
    assert f.float64_round_off == (not gradcheck.long_double_is_wider())
    return check_gradients(f, {"x_rows": x_rows, "v": v, **decoder.named_params()},
                           {"x_rows": dx_rows, "v": dv, **grads}, dy, bound=1e-6)


def test_normwise_error():
    assert normwise_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert normwise_error(np.array([1.0, 2.5]), np.array([1.0, 2.0])) == pytest.approx(0.25)
    assert normwise_error(np.zeros(0), np.zeros(0)) == 0.0


def test_float64_numerics_check_the_decoder_norm_wise(rng, float64_only):
    worst = decoder_check(rng)
    assert max(worst.values()) <= gradcheck.FLOAT64_NORMWISE_BOUND


def test_the_norm_wise_fallback_still_catches_a_wrong_gradient(rng, float64_only):
    with pytest.raises(AssertionError, match="gradient check failed"):
        decoder_check(rng, wrong=1e-4)


def test_long_double_numerics_check_elementwise(rng):
    if not gradcheck.long_double_is_wider():
        pytest.skip("np.longdouble is float64 here: the norm-wise tests above cover this platform")
    f = in_long_double(np.tanh, np.zeros(2))
    assert not f.float64_round_off
    assert max(decoder_check(rng).values()) <= 1e-6
