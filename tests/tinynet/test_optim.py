"""Optimizers (section 4.2.6) against updates computed by hand, on a convex loss, and
through a save/restore of their state."""

import math

import numpy as np
import pytest

from tinynet.backend import to_numpy
from tinynet.negligible import flush_negligible, negligible_below
from tinynet.optim import OPTIMIZERS, SGD, Adadelta, Adam, WeightAverage, clip_grad_norm, update_parameters

GRADIENTS = [np.array([0.5, -1.0, 2.0]), np.array([-0.25, 0.1, 1.5]), np.array([1.0, -3.0, 0.0])]
START = np.array([1.0, 2.0, -1.0])


def run(optimizer, xp, grads=GRADIENTS):
    w = xp.asarray(START.copy())
    for g in grads:
        optimizer.step({"w": w}, {"w": xp.asarray(g)})
    return to_numpy(w)


def test_sgd_matches_hand_computed_updates(xp):
    expected = START - 0.1 * sum(GRADIENTS)
    np.testing.assert_allclose(run(SGD(lr=0.1), xp), expected, rtol=1e-12)


def test_adam_matches_hand_computed_updates(xp):
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    w, m, v = START.copy(), np.zeros(3), np.zeros(3)
    for t, g in enumerate(GRADIENTS, start=1):
        for k in range(3):  # the textbook form, one scalar at a time
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            w[k] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    np.testing.assert_allclose(run(Adam(), xp), w, rtol=1e-12, atol=1e-15)


def test_adadelta_matches_hand_computed_updates(xp):
    rho, eps, lr = 0.95, 1e-6, 1.0
    w, sq, dl = START.copy(), np.zeros(3), np.zeros(3)
    for g in GRADIENTS:
        for k in range(3):
            sq[k] = rho * sq[k] + (1 - rho) * g[k] ** 2
            delta = math.sqrt(dl[k] + eps) / math.sqrt(sq[k] + eps) * g[k]
            dl[k] = rho * dl[k] + (1 - rho) * delta**2
            w[k] -= lr * delta
    np.testing.assert_allclose(run(Adadelta(), xp), w, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,kwargs", [("sgd", {"lr": 0.05}), ("adam", {"lr": 0.05}), ("adadelta", {})])
def test_optimizers_reduce_a_convex_loss(xp, rng, name, kwargs):
    A = xp.asarray(rng.standard_normal((8, 4)))
    target = xp.asarray(rng.standard_normal(8))
    w = xp.zeros(4)

    def loss_and_grad():
        residual = A @ w - target
        return float(0.5 * (residual @ residual)), A.T @ residual

    optimizer = OPTIMIZERS[name](**kwargs)
    first, _ = loss_and_grad()
    for _ in range(300):
        loss, grad = loss_and_grad()
        optimizer.step({"w": w}, {"w": grad})
    solution = np.linalg.lstsq(to_numpy(A), to_numpy(target), rcond=None)[0]
    best = float(0.5 * np.sum((solution @ to_numpy(A).T - to_numpy(target)) ** 2))
    assert loss < first
    assert loss - best < 0.5 * (first - best)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_save_and_restore_continues_identically(xp, name):
    straight = run(OPTIMIZERS[name](), xp, GRADIENTS * 2)
    first = OPTIMIZERS[name]()
    w = xp.asarray(START.copy())
    for g in GRADIENTS:
        first.step({"w": w}, {"w": xp.asarray(g)})
    saved = first.state_dict()
    resumed = OPTIMIZERS[name]()
    resumed.load_state_dict(saved, xp)
    for g in GRADIENTS:
        resumed.step({"w": w}, {"w": xp.asarray(g)})
    np.testing.assert_array_equal(to_numpy(w), straight)


def test_mismatched_params_and_grads_are_an_error(xp):
    with pytest.raises(KeyError, match="differ"):
        Adam().step({"w": xp.zeros(2)}, {"v": xp.zeros(2)})


def test_clip_grad_norm_scales_to_the_bound_and_leaves_small_gradients(xp):
    grads = {"a": xp.asarray([3.0, 0.0]), "b": xp.asarray([0.0, 4.0])}
    norm = clip_grad_norm(grads, max_norm=1.0)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(to_numpy(grads["a"]), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(to_numpy(grads["b"]), [0.0, 0.8], rtol=1e-6)
    small = {"a": xp.asarray([0.3, 0.4])}
    clip_grad_norm(small, max_norm=1.0)
    np.testing.assert_allclose(to_numpy(small["a"]), [0.3, 0.4], rtol=1e-6)


def test_weight_average_follows_its_warm_up_schedule(xp):
    from tinynet.optim import WeightAverage

    w = xp.asarray(START.copy())
    average = WeightAverage({"w": w}, decay=0.5)
    expected = START.copy()
    for t, g in enumerate(GRADIENTS, start=1):
        w += xp.asarray(g)
        decay = min(0.5, (1 + t) / (10 + t))  # 2/11, 3/12, then capped at 0.5
        expected = decay * expected + (1 - decay) * to_numpy(w)
        average.update({"w": w})
    np.testing.assert_allclose(to_numpy(average.average["w"]), expected, rtol=1e-12)
    restored = WeightAverage({"w": xp.zeros(3)}, decay=0.5)
    restored.load_state_dict(average.state_dict(), xp)
    assert restored.t == 3
    np.testing.assert_array_equal(to_numpy(restored.average["w"]), to_numpy(average.average["w"]))
    with pytest.raises(ValueError, match="decay"):
        WeightAverage({"w": w}, decay=1.0)


@pytest.mark.parametrize("name", ["sgd", "adam", "adadelta"])
def test_scalars_kept_in_an_array_update_like_floats(xp, name):
    """What a captured CUDA graph relies on: the scalars live in one array whose 0-d views
    keep their identity while begin_step rewrites their values every step."""
    floats, held = OPTIMIZERS[name](lr=0.05), OPTIMIZERS[name](lr=0.05)
    held.keep_scalars_on_device(xp, np.float64)
    views = dict(held.scalars)
    w_floats, w_held = xp.asarray(START.copy()), xp.asarray(START.copy())
    for lr, g in zip((0.05, 0.02, 0.01), GRADIENTS):
        floats.lr = held.lr = lr
        floats.step({"w": w_floats}, {"w": xp.asarray(g)})
        held.begin_step()
        assert all(held.scalars[key] is views[key] for key in views)
        assert all(float(held.scalars[key]) == pytest.approx(floats.scalars[key], rel=1e-15) for key in views)
        held.apply({"w": w_held}, {"w": xp.asarray(g)})
    np.testing.assert_allclose(to_numpy(w_held), to_numpy(w_floats), rtol=1e-14)


@pytest.mark.parametrize("max_norm", [100.0, 0.5])  # the joint norm under, then over, the bound
def test_update_parameters_matches_one_step_by_hand(xp, max_norm):
    """A training step's update: eq. (17)'s 2 lam w on the weight only, clipping by the joint
    norm of all gradients, Adam's first step, then the weight average (on the GPU: the fused
    kernels, with the scalars on the device)."""
    lam, decay = 0.01, 0.5
    w, b, grad_w, grad_b = START.copy(), np.array([0.3, -0.2]), GRADIENTS[0], np.array([0.4, 0.1])
    with_l2 = grad_w + 2 * lam * w
    scale = min(1.0, max_norm / (math.sqrt((with_l2**2).sum() + (grad_b**2).sum()) + 1e-6))
    rate = 1 - min(decay, 2 / 11)  # the average's first step
    expected = {}
    for name, p, g in (("w", w, with_l2 * scale), ("b", b, grad_b * scale)):
        updated = p - 1e-3 * g / (np.abs(g) + 1e-8)  # Adam's first step: m_hat = g, v_hat = g^2
        expected[name] = (g, updated, p + rate * (updated - p))
    params = {"w": xp.asarray(w), "b": xp.asarray(b)}
    optimizer, average = Adam(), WeightAverage(params, decay)
    if xp is not np:
        for holder in (optimizer, average):
            holder.keep_scalars_on_device(xp, np.float64)
    optimizer.begin_step()
    average.begin_step()
    grads = {"w": xp.asarray(grad_w), "b": xp.asarray(grad_b)}
    update_parameters(params, grads, {"w": params["w"]}, optimizer, lam, max_norm, average)
    for name, (grad, updated, averaged) in expected.items():
        np.testing.assert_allclose(to_numpy(grads[name]), grad, rtol=1e-12)  # left with eq. 17's term, clipped
        np.testing.assert_allclose(to_numpy(params[name]), updated, rtol=1e-12)
        np.testing.assert_allclose(to_numpy(average.average[name]), averaged, rtol=1e-12)
    with pytest.raises(KeyError, match="differ"):
        update_parameters(params, {"w": xp.asarray(grad_w)}, {}, optimizer, lam, max_norm)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_negligible_zeroes_what_is_below_the_root_of_tiny_only(xp, dtype):
    """The bound is sqrt(finfo.tiny), exactly (float32: 2^-63), so the product of two values
    it keeps is normal; the bound itself, larger values, NaN and infinities stay as they are."""
    info = np.finfo(dtype)
    bound = negligible_below(dtype)
    assert bound == {np.float32: 2.0**-63, np.float64: 2.0**-511}[dtype]
    assert dtype(bound) * dtype(bound) == info.tiny
    below = [bound * (1 - info.eps), bound / 1e3, info.tiny, info.tiny * info.eps]  # the last two: normal, subnormal
    kept = [bound, bound * 2, 1e-3, 7.0, np.inf, np.nan]
    values = np.array(below + [-b for b in below] + kept + [-k for k in kept] + [0.0], dtype=dtype)
    array = xp.asarray(values)
    flush_negligible(array)
    expected = values.copy()
    expected[: 2 * len(below)] = 0
    np.testing.assert_array_equal(to_numpy(array), expected)  # NaN where NaN was
    assert to_numpy(array).dtype == dtype


def test_update_parameters_zeroes_negligible_weights_state_and_average(xp):
    """After the step every value of the weights, Adam's moments and the average below
    the bound (float32) is 0, the others are untouched: a weight there without gradient
    (0), a live weight (Adam's usual step), a weight whose gradient is negligible (its
    moments become 0, the weight stays) and a weight just above the bound (kept)."""
    bound = negligible_below(np.float32)
    start = np.array([bound * 0.9, 0.5, 0.5, bound * 4], dtype=np.float32)
    params = {"w": xp.asarray(start)}
    optimizer, average = Adam(lr=1e-3), WeightAverage(params, decay=0.5)
    optimizer.begin_step()
    average.begin_step()
    grads = {"w": xp.asarray(np.array([0.0, 0.25, bound * 5, 0.0], dtype=np.float32))}
    update_parameters(params, grads, {}, optimizer, 0.0, 10.0, average)
    w, m, v, a = (to_numpy(x) for x in (params["w"], optimizer.state["w"]["m"], optimizer.state["w"]["v"],
                                        average.average["w"]))
    assert w[0] == 0 and a[0] == 0
    np.testing.assert_allclose(w[1], 0.5 - 1e-3, rtol=1e-6)  # Adam's first step: lr g / |g|
    assert m[1] > 0 and v[1] > 0
    assert m[2] == 0 and v[2] == 0 and w[2] == 0.5 and a[2] == 0.5
    assert w[3] == bound * 4 and a[3] == bound * 4
