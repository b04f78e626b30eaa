"""Inverted dropout (section 5.3): mask statistics and scaling, identity in evaluation, the
backward reusing the forward's mask, and the layer's own lazily created generator."""

import numpy as np
import pytest

from tinynet.backend import to_numpy
from tinynet.functional.dropout import MaskSource, counter_uniform, dropout_backward, dropout_forward, make_rng
from tinynet.gradcheck import check_gradients
from tinynet.layers import Dropout

BOUND = 1e-6  # worst relative error allowed, float64 central differences (eps 1e-6)


def test_dropout_mask_statistics_and_scaling(xp, rng):
    p, n = 0.25, 200_000
    x = xp.asarray(rng.uniform(1, 2, n), dtype=xp.float32)
    y, mask = dropout_forward(x, p, make_rng(xp, 0), train=True)
    y, x = to_numpy(y), to_numpy(x)
    kept = y != 0
    # Binomial(n, 1 - p): 5 standard deviations is about 0.5 % of n here.
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], x[kept] / np.float32(1 - p), rtol=1e-6)
    assert y.dtype == mask.dtype == np.float32
    assert set(np.unique(to_numpy(mask))) == {np.float32(0), np.float32(1 / (1 - p))}


def test_dropout_eval_is_identity(xp, rng):
    x = xp.asarray(rng.standard_normal((4, 5)))
    y, cache = dropout_forward(x, 0.5, make_rng(xp, 0), train=False)
    np.testing.assert_array_equal(to_numpy(y), to_numpy(x))
    dy = xp.asarray(rng.standard_normal((4, 5)))
    np.testing.assert_array_equal(to_numpy(dropout_backward(dy, cache)[0]), to_numpy(dy))


def test_dropout_backward_uses_the_forward_mask(xp, rng):
    x = xp.asarray(rng.uniform(1, 2, (6, 7)))
    y, mask = dropout_forward(x, 0.5, make_rng(xp, 3), train=True)
    dy = xp.asarray(rng.standard_normal((6, 7)))
    dx, grads = dropout_backward(dy, mask)
    assert grads == {}
    np.testing.assert_array_equal(to_numpy(dx == 0), to_numpy(y == 0))
    np.testing.assert_allclose(to_numpy(dx), to_numpy(dy) * to_numpy(y) / to_numpy(x), rtol=1e-14)


def test_dropout_gradient_with_a_fixed_mask(xp, rng):
    """Re-seeding the generator on every call fixes the mask, so the function is linear in x."""
    x = xp.asarray(rng.standard_normal((3, 8)))
    dy = xp.asarray(rng.standard_normal((3, 8)))
    _, mask = dropout_forward(x, 0.3, make_rng(xp, 5), train=True)
    dx, _ = dropout_backward(dy, mask)
    check_gradients(lambda: dropout_forward(x, 0.3, make_rng(xp, 5), train=True)[0], {"x": x}, {"x": dx},
                    dy, bound=BOUND)


def test_dropout_rejects_p_outside_unit_interval(xp):
    with pytest.raises(ValueError, match="dropout probability"):
        dropout_forward(xp.ones(3), 1.0, make_rng(xp, 0), train=True)


def test_dropout_layer_is_reproducible_and_draws_fresh_masks(xp, rng):
    x = xp.ones((5, 40))
    first, second = Dropout(0.25, seed=7), Dropout(0.25, seed=7)
    masks = [to_numpy(first.forward(x, train=True)) for _ in range(2)]
    assert not np.array_equal(masks[0], masks[1])  # a new mask every step
    np.testing.assert_array_equal(to_numpy(second.forward(x, train=True)), masks[0])
    assert first.masks.xp is xp
    dy = xp.asarray(rng.standard_normal((5, 40)))
    np.testing.assert_array_equal(to_numpy(first.backward(dy)), to_numpy(dy) * masks[1])
    np.testing.assert_array_equal(to_numpy(first.forward(x, train=False)), to_numpy(x))


def test_dropout_layer_seed_from_generator(xp):
    x = xp.ones((4, 50))
    a = Dropout(0.5, np.random.default_rng(11)).forward(x, train=True)
    b = Dropout(0.5, np.random.default_rng(11)).forward(x, train=True)
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_counter_uniform_is_uniform_and_keyed_by_seed_and_draw():
    u = counter_uniform(3, 0, (200_000,))
    assert u.dtype == np.float32 and 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    histogram, _ = np.histogram(u, bins=10, range=(0, 1))
    assert np.abs(histogram / len(u) - 0.1).max() < 0.005
    np.testing.assert_array_equal(counter_uniform(3, 0, (4, 5)), u[:20].reshape(4, 5))  # index-keyed
    for other in (counter_uniform(4, 0, (1000,)), counter_uniform(3, 1, (1000,))):
        assert abs(np.corrcoef(other, u[:1000])[0, 1]) < 0.1 and (other != u[:1000]).mean() > 0.99


def test_mask_source_reseeds_to_the_same_masks(xp):
    for counter in (False, True):
        source = MaskSource(5, counter_on_cpu=counter)
        first = to_numpy(source.generator(xp).random((30,)))
        source.generator(xp).random((30,))
        source.reseed(5)
        np.testing.assert_array_equal(to_numpy(source.generator(xp).random((30,))), first)
        source.reseed(6)
        assert not np.array_equal(to_numpy(source.generator(xp).random((30,))), first)
