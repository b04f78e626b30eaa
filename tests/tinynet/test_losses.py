"""Eq. (15) RMSE (with the square the paper's formula lacks), MSE, eq. (17) L2, softmax cross-entropy."""

import numpy as np

from tinynet.backend import to_numpy
from tinynet.functional.losses import add_l2_gradients, l2_penalty, mse_loss, rmse_loss, softmax_cross_entropy
from tinynet.gradcheck import check_gradients

BOUND = 1e-6  # worst relative error allowed, float64 central differences (eps 1e-6)


def test_eq15_rmse_value_is_root_of_mean_square(xp, rng):
    y_hat, y = rng.random((3, 5)), rng.random((3, 5))
    loss, _ = rmse_loss(xp.asarray(y_hat), xp.asarray(y))
    np.testing.assert_allclose(float(loss), np.sqrt(np.mean((y_hat - y) ** 2)), rtol=1e-14)
    assert float(loss) > np.mean((y_hat - y) ** 2)  # the root matters: RMSE > MSE when below 1


def test_eq15_rmse_gradient(xp, rng):
    y_hat, y = xp.asarray(rng.random((4, 7))), xp.asarray(rng.random((4, 7)))
    _, dy_hat = rmse_loss(y_hat, y)
    worst = check_gradients(lambda: rmse_loss(y_hat, y)[0], {"y_hat": y_hat}, {"y_hat": dy_hat}, bound=BOUND)
    assert worst["y_hat"] <= BOUND


def test_mse_value_and_gradient(xp, rng):
    y_hat, y = xp.asarray(rng.random((4, 7))), xp.asarray(rng.random((4, 7)))
    loss, dy_hat = mse_loss(y_hat, y)
    np.testing.assert_allclose(float(loss), np.mean((to_numpy(y_hat) - to_numpy(y)) ** 2), rtol=1e-14)
    check_gradients(lambda: mse_loss(y_hat, y)[0], {"y_hat": y_hat}, {"y_hat": dy_hat}, bound=BOUND)


def test_eq17_l2_penalty_value_and_gradient(xp, rng):
    weights = {"enc/W": xp.asarray(rng.standard_normal((3, 4))), "dec/W": xp.asarray(rng.standard_normal(5))}
    lam = 0.01
    penalty, grads = l2_penalty(weights, lam)
    expected = lam * sum(np.sum(to_numpy(w) ** 2) for w in weights.values())
    np.testing.assert_allclose(float(penalty), expected, rtol=1e-14)
    check_gradients(lambda: l2_penalty(weights, lam)[0], dict(weights), grads, bound=BOUND)


def test_eq17_l2_gradients_added_in_place_equal_the_penalty_gradient(xp, rng):
    weights = {"enc/W": xp.asarray(rng.standard_normal((3, 4))), "dec/W": xp.asarray(rng.standard_normal(5))}
    grads = {name: xp.asarray(rng.standard_normal(w.shape)) for name, w in weights.items()}
    grads["dec/b"] = xp.asarray(rng.standard_normal(2))
    expected = {name: to_numpy(g).copy() for name, g in grads.items()}
    for name, g in l2_penalty(weights, 0.01)[1].items():
        expected[name] += to_numpy(g)
    add_l2_gradients(grads, weights, 0.01)
    for name in grads:  # the bias, not among the weights, is left alone
        np.testing.assert_allclose(to_numpy(grads[name]), expected[name], rtol=1e-15, atol=0)


def test_eq17_l2_applies_to_weights_not_biases(rng):
    from tinynet.layers import Dense

    layer = Dense(3, 2, rng, dtype=np.float64)
    assert set(layer.named_weights()) == {"W"}
    assert set(layer.named_params()) == {"W", "b"}


def test_softmax_cross_entropy_value_and_stability(xp):
    logits = xp.asarray([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    labels = xp.asarray([2, 1])
    loss, _ = softmax_cross_entropy(logits, labels)
    first = -np.log(np.exp(3) / np.exp([1, 2, 3]).sum())
    np.testing.assert_allclose(float(loss), (first + 1000.0) / 2, rtol=1e-12)  # no overflow at +-1000


def test_softmax_cross_entropy_gradient(xp, rng):
    logits = xp.asarray(rng.standard_normal((5, 7)))
    labels = xp.asarray(rng.integers(0, 7, 5))
    _, dlogits = softmax_cross_entropy(logits, labels)
    worst = check_gradients(lambda: softmax_cross_entropy(logits, labels)[0], {"logits": logits},
                            {"logits": dlogits}, bound=BOUND)
    assert worst["logits"] <= BOUND
