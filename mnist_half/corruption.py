"""The training-data corruption of Figure 5: blank the lower 14 rows, then add noise everywhere.

Runs on the host in NumPy on float images in [0, 1] whose last two axes are (rows, cols),
so (N, 28, 28) and (N, 1, 28, 28) both work. One seeded numpy Generator draws the noise:
the training loop passes its own (fresh noise every batch); `corrupt_test_set` uses a fixed
seed, and `corrupt_held_out` the run's noise with TEST_NOISE_SEED, so that evaluations
compare like with like. Inputs are never modified.
"""

import numpy as np

from .config import TEST_NOISE_SEED


def upper_rows(images):
    """The rows of the upper half of `images` (..., rows, cols), the half the network only
    denoises: rows 0..13 of 28."""
    return slice(0, images.shape[-2] // 2)


def lower_rows(images):
    """The rows of the lower half of `images` (..., rows, cols), the half that is blanked
    (Figure 5) and must be redrawn: rows 14..27 of 28."""
    return slice(images.shape[-2] // 2, None)


def blank_lower_half(images):
    """A copy of `images` with the lower half of the rows set to 0 (black)."""
    x = np.array(images, copy=True)
    x[..., lower_rows(x), :] = 0
    return x


def add_salt_and_pepper(images, rng, fraction=0.2):
    """A copy where each pixel, with probability `fraction`, becomes 1 (salt) or 0 (pepper), 50/50."""
    u = rng.random(images.shape, dtype=images.dtype)
    x = np.array(images, copy=True)
    x[u < fraction / 2] = 1
    x[(u >= fraction / 2) & (u < fraction)] = 0
    return x


def add_gaussian_noise(images, rng, sigma=0.3):
    """images + N(0, sigma^2) white noise, clipped back to [0, 1]."""
    noise = rng.standard_normal(images.shape, dtype=images.dtype)
    noise *= sigma
    noise += images
    return np.clip(noise, 0, 1, out=noise)


# name -> (noise function, default amount: its `fraction` or `sigma`)
NOISES = {
    "sp": (add_salt_and_pepper, 0.2),
    "gauss": (add_gaussian_noise, 0.3),
}


def corrupt(images, rng, noise="sp", amount=None):
    """Figure 5: blank the lower half, then add `noise` ('sp' or 'gauss') over the whole image.

    amount: the salt-and-pepper fraction or the Gaussian sigma (default 0.2 / 0.3).
    """
    if noise not in NOISES:
        raise ValueError(f"unknown noise {noise!r}: choose one of {', '.join(NOISES)}")
    add_noise, default_amount = NOISES[noise]
    return add_noise(blank_lower_half(images), rng, default_amount if amount is None else amount)


def corrupt_test_set(images, noise="sp", seed=0, amount=None):
    """`corrupt` with a Generator seeded by `seed`: the same corrupted inputs every evaluation."""
    return corrupt(images, np.random.default_rng(seed), noise, amount)


def corrupt_held_out(images, config):
    """The fixed corruption of a run's held-out digits (its noise, seed TEST_NOISE_SEED): the
    same inputs for the test loss in training, the evaluation and the figures."""
    return corrupt_test_set(images, config["noise"], TEST_NOISE_SEED, config["noise_amount"])
