"""Figure 5's corruption: lower 14 rows blanked, then salt-and-pepper or Gaussian noise on top."""

import math

import numpy as np
import pytest

from mnist_half.config import TEST_NOISE_SEED
from mnist_half.corruption import (
    add_gaussian_noise,
    add_salt_and_pepper,
    blank_lower_half,
    corrupt,
    corrupt_held_out,
    corrupt_test_set,
    lower_rows,
    upper_rows,
)

SIGMAS = 6  # statistical bounds: a binomial or normal estimate lies within 6 standard errors


def grey_images(n=200, value=0.5, shape=(28, 28)):
    """Mid-grey images: salt (1), pepper (0) and clipping are all told apart from clean pixels."""
    return np.full((n, *shape), value, dtype=np.float32)


def within_bounds(observed, p, count):
    """`observed` is a frequency of `count` Bernoulli(p) trials within SIGMAS standard errors of p."""
    return abs(observed - p) <= SIGMAS * math.sqrt(p * (1 - p) / count)


@pytest.mark.parametrize("shape", [(28, 28), (1, 28, 28)], ids=["NHW", "NCHW"])
def test_blank_lower_half_zeroes_rows_14_to_27_only(rng, shape):
    images = rng.uniform(0.1, 1, (5, *shape)).astype(np.float32)
    before = images.copy()
    blanked = blank_lower_half(images)
    assert not blanked[..., 14:, :].any()
    np.testing.assert_array_equal(blanked[..., :14, :], images[..., :14, :])
    np.testing.assert_array_equal(images, before)  # input untouched


def test_salt_and_pepper_fractions_match_the_request(rng):
    images = grey_images()
    noisy = add_salt_and_pepper(images, rng, fraction=0.2)
    count = noisy.size
    assert within_bounds((noisy == 1).mean(), 0.1, count)
    assert within_bounds((noisy == 0).mean(), 0.1, count)
    assert set(np.unique(noisy)) == {0.0, 0.5, 1.0}
    assert noisy.dtype == np.float32
    np.testing.assert_array_equal(images, grey_images())


def test_gaussian_noise_has_the_requested_sigma_and_is_clipped(rng):
    images = grey_images()
    sigma = 0.3
    noisy = add_gaussian_noise(images, rng, sigma=sigma)
    assert noisy.dtype == np.float32 and noisy.min() == 0 and noisy.max() == 1
    # P(0.5 + sigma z <= 0) = Phi(-0.5 / sigma), the same mass clipped at 1 by symmetry.
    p_clip = 0.5 * (1 + math.erf(-0.5 / sigma / math.sqrt(2)))
    assert within_bounds((noisy == 0).mean(), p_clip, noisy.size)
    assert within_bounds((noisy == 1).mean(), p_clip, noisy.size)
    inside = noisy[(noisy > 0) & (noisy < 1)] - 0.5
    assert abs(inside.mean()) < SIGMAS * sigma / math.sqrt(inside.size)
    np.testing.assert_array_equal(images, grey_images())


@pytest.mark.parametrize("noise", ["sp", "gauss"])
def test_corrupt_blanks_before_adding_noise_everywhere(rng, noise):
    images = grey_images()
    corrupted = corrupt(images, np.random.default_rng(7), noise)
    lower, upper = corrupted[:, 14:, :], corrupted[:, :14, :]
    if noise == "sp":
        assert set(np.unique(lower)) == {0.0, 1.0}  # blank rows carry only the salt
        assert within_bounds((lower == 1).mean(), 0.1, lower.size)
        assert within_bounds((upper == 0.5).mean(), 0.8, upper.size)
    else:
        assert within_bounds((lower == 0).mean(), 0.5, lower.size)  # zero plus noise, clipped at 0
        assert within_bounds((upper == 0).mean(), 0.5 * (1 + math.erf(-0.5 / 0.3 / math.sqrt(2))), upper.size)
    # The order is: blank first, then noise drawn from the same Generator.
    expected_noise = {"sp": add_salt_and_pepper, "gauss": add_gaussian_noise}[noise]
    np.testing.assert_array_equal(corrupted, expected_noise(blank_lower_half(images), np.random.default_rng(7)))
    np.testing.assert_array_equal(images, grey_images())


def test_corrupt_amount_overrides_the_default(rng):
    corrupted = corrupt(grey_images(), rng, "sp", amount=0.5)
    assert within_bounds((corrupted[:, :14, :] != 0.5).mean(), 0.5, corrupted[:, :14, :].size)


def test_corrupt_test_set_is_deterministic_per_seed(rng):
    images = rng.uniform(0, 1, (4, 28, 28)).astype(np.float32)
    for noise in ("sp", "gauss"):
        first = corrupt_test_set(images, noise, seed=3)
        np.testing.assert_array_equal(first, corrupt_test_set(images, noise, seed=3))
        assert not np.array_equal(first, corrupt_test_set(images, noise, seed=4))


def test_training_noise_is_fresh_every_batch(rng):
    images = grey_images(4)
    assert not np.array_equal(corrupt(images, rng), corrupt(images, rng))


def test_unknown_noise_is_an_error(rng):
    with pytest.raises(ValueError, match="unknown noise 'poisson'"):
        corrupt(grey_images(1), rng, "poisson")


@pytest.mark.parametrize("shape", [(28, 28), (1, 28, 28)], ids=["NHW", "NCHW"])
def test_the_halves_split_the_rows_at_14(shape):
    images = np.zeros((2, *shape), np.float32)
    assert upper_rows(images) == slice(0, 14) and lower_rows(images) == slice(14, None)
    rows = np.arange(28)
    np.testing.assert_array_equal(np.concatenate([rows[upper_rows(images)], rows[lower_rows(images)]]), rows)


def test_held_out_corruption_is_the_runs_noise_with_the_fixed_test_seed(rng):
    images = rng.uniform(0, 1, (4, 28, 28)).astype(np.float32)
    config = {"noise": "gauss", "noise_amount": 0.1}
    np.testing.assert_array_equal(corrupt_held_out(images, config),
                                  corrupt_test_set(images, "gauss", TEST_NOISE_SEED, 0.1))
    assert not np.array_equal(corrupt_held_out(images, config), corrupt_held_out(images, {**config, "noise": "sp"}))
