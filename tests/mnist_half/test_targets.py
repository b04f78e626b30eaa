"""The neighbour-blended training targets (mnist_half.targets, docs/training.md)."""

import numpy as np
import pytest

from mnist_half.targets import blended_targets


def digits(n=40, seed=0):
    return np.random.default_rng(seed).random((n, 28, 28), dtype=np.float32)


def reference_targets(images, blend, k):
    """Loops and np.linalg.norm: each lower half blended with the mean lower half of the k
    other digits whose upper halves are nearest."""
    out = images.copy()
    for i, image in enumerate(images):
        distances = [np.inf if j == i else np.linalg.norm(other[:14] - image[:14]) for j, other in enumerate(images)]
        nearest = np.argsort(distances, kind="stable")[:k]
        out[i, 14:] = (1 - blend) * image[14:] + blend * images[nearest, 14:].mean(axis=0)
    return out


@pytest.mark.parametrize("blend, k", [(0.3, 10), (1.0, 1), (0.5, 3)])
def test_lower_halves_blend_with_the_nearest_other_digits_upper_halves_untouched(blend, k):
    images = digits()
    targets = blended_targets(images, blend, k, batch_size=16)  # several batches, an uneven last one
    np.testing.assert_array_equal(targets[:, :14], images[:, :14])
    np.testing.assert_allclose(targets, reference_targets(images, blend, k), atol=1e-6)


def test_a_digit_is_never_its_own_neighbour():
    images = digits(6)
    images[1] = images[0]  # digit 1 is digit 0's twin: each is the other's nearest
    images[1, 14:] = 0.0
    targets = blended_targets(images, 1.0, k=1)
    np.testing.assert_array_equal(targets[0, 14:], images[1, 14:])
    np.testing.assert_array_equal(targets[1, 14:], images[0, 14:])


def test_blend_zero_gives_the_digits_back_and_bad_values_are_refused():
    images = digits(12)
    assert blended_targets(images, 0.0) is images
    for blend in (-0.1, 1.5):
        with pytest.raises(ValueError, match="blend"):
            blended_targets(images, blend)
    with pytest.raises(ValueError, match="training digits"):
        blended_targets(images, 0.3, k=12)  # only 11 others
