"""The nearest-neighbour and PCA completions that the network is compared with."""

import numpy as np

from mnist_half.baselines import (
    complete_from_upper,
    fit_pca,
    median_filter,
    nearest_neighbour_completion,
    pca_completion,
)
from mnist_half.corruption import corrupt_test_set
from mnist_half.data import load_mnist, split_dataset


def test_median_filter_removes_isolated_salt_and_pepper_and_keeps_flat_regions():
    images = np.full((2, 5, 7), 0.25, dtype=np.float32)
    images[0, 2, 3] = 1.0  # salt
    images[1, 0, 0] = 0.0  # pepper in a corner: the edge padding must not keep it
    np.testing.assert_array_equal(median_filter(images), np.full((2, 5, 7), 0.25, dtype=np.float32))


def test_nearest_neighbour_is_the_mean_of_the_k_closest_upper_halves(rng):
    # Flat upper halves pass the median filter unchanged, so the ranking is known exactly.
    levels = np.array([0.10, 0.90, 0.48, 0.30, 0.53, 0.70, 0.46], dtype=np.float32)
    train = rng.random((len(levels), 28, 28)).astype(np.float32)
    train[:, :14] = levels[:, None, None]
    query = np.zeros((1, 28, 28), dtype=np.float32)
    query[:, :14] = 0.5  # nearest: 0.48, 0.53, 0.46 (indices 2, 4, 6), then 0.30 and 0.70
    completed = nearest_neighbour_completion(query, train, k=3)
    np.testing.assert_allclose(completed[0], train[[2, 4, 6]].mean(axis=0), rtol=1e-6)


def test_pca_completion_recovers_a_digit_in_the_span(rng):
    train = rng.random((200, 28, 28)).astype(np.float32)
    pca = fit_pca(train, n_components=10)
    coefficients = rng.standard_normal(10) * np.sqrt(pca.variances)
    digit = (pca.mean + coefficients @ pca.components).reshape(1, 28, 28).astype(np.float32)
    assert 0 < digit.min() and digit.max() < 1  # so the final clipping changes nothing
    completed = complete_from_upper(digit[:, :14], pca, noise_variance=1e-9)
    np.testing.assert_allclose(completed, digit, atol=1e-5)


def test_fit_pca_components_are_orthonormal_and_sorted(rng):
    pca = fit_pca(rng.random((300, 28, 28)).astype(np.float32), n_components=20)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(20), atol=1e-5)
    assert np.all(np.diff(pca.variances) <= 0)


def test_baselines_beat_the_corrupted_input_on_the_lower_half(no_mnist_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_HALF_CACHE", str(tmp_path))
    train, test = split_dataset(load_mnist(download=False))
    clean = test.images[:200]
    corrupted = corrupt_test_set(clean, "sp", seed=1)

    def lower_rmse(images):
        return np.sqrt(np.mean((images[:, 14:] - clean[:, 14:]) ** 2))

    baseline = lower_rmse(corrupted)
    assert lower_rmse(nearest_neighbour_completion(corrupted, train.images)) < 0.6 * baseline
    assert lower_rmse(pca_completion(corrupted, fit_pca(train.images))) < 0.6 * baseline
