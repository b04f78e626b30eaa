"""The whole models with and without tinynet's accelerated twins (tinynet.accel): one
training pass of each model, float32 and float64, agrees with its plain reference. This
test uses the application (mnist_half.models), so it lives outside tests/tinynet."""

import numpy as np
import pytest

from mnist_half.models import build_model
from tinynet import dispatch

pytest.importorskip("tinynet.accel", reason="the accelerated twins (tinynet.accel) are absent")

DTYPES = (np.float32, np.float64)
# the cell's rounding differences travel through every step and layer
MODEL_TOLERANCE = {np.float32: 1e-4, np.float64: 1e-12}


def both_paths(function, *args):
    """(function(*args) through the twins, the same through the plain reference)."""
    with dispatch.reference_only():
        reference = function(*args)
    return function(*args), reference


def normwise_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def model_forward_backward(name, dtype):
    """Output, input gradient and every parameter gradient of one training pass (dropout on)."""
    rng = np.random.default_rng(5)
    model = build_model(name, np.random.default_rng(3), {"hidden": 9, "layers": 3, "dropout": 0.25}, 0.2,
                        dtype=dtype, input_grad=True)
    x = rng.uniform(0.05, 0.95, (4, 28, 28)).astype(dtype)
    y = model.forward(x, train=True)
    dx = model.backward(rng.standard_normal(y.shape).astype(dtype))
    return {"y": y, "dx": dx, **model.named_grads()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["cnn-lstm", "cnn-cnn"])
def test_eq03_eq04_models_match_with_and_without_twins(dtype, name):
    ours, twin = both_paths(model_forward_backward, name, dtype)
    assert set(ours) == set(twin)
    errors = {key: normwise_error(ours[key], twin[key]) for key in ours}
    assert max(errors.values()) < MODEL_TOLERANCE[dtype], errors
