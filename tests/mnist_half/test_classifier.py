"""The digit classifier that scores completions: it learns, is found again, and is tied to its digits."""

import numpy as np
import pytest

from mnist_half.checkpoint import CheckpointError, save_checkpoint
from mnist_half.config import DEFAULTS
from mnist_half.data import Dataset, load_mnist, random_shift
from mnist_half.reader import (
    RUN_FILE,
    TRAINING,
    build_classifier,
    cache_path,
    classifier_meta,
    classifier_tag,
    load_classifier,
    load_or_train_classifier,
    predict,
    save_classifier,
    train_classifier,
)
from tinynet.backend import gpu_unavailable_reason
from tinynet.functional.losses import softmax_cross_entropy


@pytest.fixture
def digits(no_mnist_env, monkeypatch, tmp_path):
    """256 real digits of all classes (the embedded file is sorted by label), cache in tmp_path."""
    monkeypatch.setenv("MNIST_HALF_CACHE", str(tmp_path / "cache"))
    dataset = load_mnist(download=False)
    return dataset.subset(np.random.default_rng(0).choice(len(dataset), 256, replace=False), "256 digits")


def fake_digits(rng, n=40):
    return Dataset(rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n), f"{n} random images")


def test_classifier_learns_on_a_small_subset(digits):
    def loss(model):
        return float(softmax_cross_entropy(model.forward(digits.images[:, None]), digits.labels)[0])

    before = loss(build_classifier(np.random.default_rng(0)))  # the same initialisation as seed 0
    settings = {**TRAINING, "iters": 30, "batch_size": 32, "warmup": 5}
    model = train_classifier(digits, np, seed=0, settings=settings, progress=False)
    assert loss(model) < 0.4 * before  # about 2.5 -> 0.5


def test_random_shift_moves_each_image_by_at_most_max_shift(rng):
    images = np.zeros((50, 9, 11), dtype=np.float32)
    images[:, 4, 5] = 1.0  # one bright pixel, away from the border
    shifted = random_shift(images, rng, max_shift=1)
    assert shifted.shape == images.shape
    np.testing.assert_array_equal(shifted.sum(axis=(1, 2)), 1.0)
    n, rows, cols = np.nonzero(shifted)
    assert set(rows) == {3, 4, 5} and set(cols) == {4, 5, 6}  # every offset occurs in 50 draws
    np.testing.assert_array_equal(random_shift(images, rng, max_shift=0), images)


def test_tag_names_the_training_digits(rng):
    digits = fake_digits(rng)
    assert classifier_tag(digits) == classifier_tag(Dataset(digits.images.copy(), digits.labels.copy(), "same"))
    other_labels = Dataset(digits.images, (digits.labels + 1) % 10, "relabelled")
    assert classifier_tag(other_labels) != classifier_tag(digits)
    assert classifier_tag(digits).startswith("40-")


def test_cache_path_follows_mnist_half_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_HALF_CACHE", str(tmp_path))
    assert cache_path("3750-abc") == tmp_path / "classifier-3750-abc.npz"


def test_save_and_load_keep_the_predictions(rng, tmp_path):
    digits = fake_digits(rng)
    model = build_classifier(rng)
    path = tmp_path / "c.npz"
    save_classifier(path, model, classifier_meta(classifier_tag(digits), digits, DEFAULTS, seed=0, elapsed_s=1.0))
    loaded, meta = load_classifier(path, np)
    assert meta["kind"] == "classifier" and meta["tag"] == classifier_tag(digits)
    np.testing.assert_array_equal(predict(loaded, digits.images, np, batch_size=16),
                                  predict(model, digits.images, np))


def test_load_classifier_rejects_another_checkpoint(rng, tmp_path):
    path = tmp_path / "run.npz"
    save_checkpoint(path, build_classifier(rng).named_params(), {}, {"iteration": 0, "config": {"model": "cnn-lstm"}})
    with pytest.raises(CheckpointError, match="not a digit classifier"):
        load_classifier(path, np)


def test_load_or_train_takes_the_run_folders_then_the_caches(rng, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_HALF_CACHE", str(tmp_path / "cache"))
    digits, others = fake_digits(rng), fake_digits(rng)
    run_dir = tmp_path / "run"
    save_classifier(run_dir / RUN_FILE, build_classifier(rng),
                    classifier_meta(classifier_tag(digits), digits, DEFAULTS, seed=0, elapsed_s=1.0))
    _, meta = load_or_train_classifier(DEFAULTS, np, digits, progress=False, run_dir=run_dir)
    assert meta["tag"] == classifier_tag(digits)

    # The run folder's classifier belongs to other digits: it is skipped, with a note, for the cache's.
    save_classifier(cache_path(classifier_tag(others)), build_classifier(rng),
                    classifier_meta(classifier_tag(others), others, DEFAULTS, seed=0, elapsed_s=1.0))
    _, meta = load_or_train_classifier(DEFAULTS, np, others, progress=False, run_dir=run_dir)
    assert meta["tag"] == classifier_tag(others)
    assert "trained on other digits" in capsys.readouterr().err


@pytest.mark.skipif(gpu_unavailable_reason() is None, reason="a GPU is present, so --device gpu is valid here")
def test_cli_gpu_without_one_exits_2(run_cli, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("classifier", ["--device", "gpu", "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --device gpu") and "\n" not in err
