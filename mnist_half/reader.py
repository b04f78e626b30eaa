"""The digit reader: a small CNN classifier that tells whether a completion still shows the
right digit (mnist_half.evaluation runs it on the reconstructions).

It is trained with softmax cross-entropy and Adam on the CLEAN training digits of a run's
split only, so it never saw a test digit, and saved as classifier-<tag>.npz in the cache,
where <tag> names the training digits (their count and a hash of their pixels and labels).
"""

import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinynet.backend import to_numpy
from tinynet.functional.losses import softmax_cross_entropy
from tinynet.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from tinynet.optim import Adam

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import INFERENCE_BATCH, SPLIT_KEYS
from .data import CLASSES, batches, default_cache_dir, random_shift
from .files import check_writable_folder
from .models import POOLED_SIZE
from .training import learning_rate

# About 17 epochs of the embedded split's 3,750 digits (about 98 % on its clean test digits);
# random shifts of up to one pixel make it read digits drawn a little off centre.
TRAINING = {"iters": 1000, "batch_size": 64, "lr": 2e-3, "warmup": 50, "min_lr_ratio": 0.0, "max_shift": 1}
RUN_FILE = "classifier.npz"  # a classifier kept in a run folder, next to checkpoint.npz
CHANNELS = (16, 32)
PROGRESS_EVERY = 50  # iterations between two loss read-backs for the progress bar


def build_classifier(rng, dtype=np.float32):
    """(N, 1, 28, 28) -> (N, 10) logits: conv5x5 1->16, ReLU, pool, conv5x5 16->32, ReLU, pool, dense."""
    first, second = CHANNELS
    return Sequential([
        ("conv1", Conv2D(1, first, 5, rng, dtype=dtype)),
        ("relu1", ReLU()),
        ("pool1", MaxPool2D(2, 2)),
        ("conv2", Conv2D(first, second, 5, rng, dtype=dtype)),
        ("relu2", ReLU()),
        ("pool2", MaxPool2D(2, 2)),
        ("flatten", Flatten()),
        ("fc", Dense(second * POOLED_SIZE**2, CLASSES, rng, dtype=dtype)),
    ])


def train_classifier(train_set, xp, seed=0, settings=TRAINING, progress=True):
    """A classifier trained on `train_set` (clean digits) on array module `xp`."""
    rng = np.random.default_rng(seed)
    model = build_classifier(rng).to(xp)
    optimizer = Adam(lr=settings["lr"])
    index_batches = batches(train_set.images, settings["batch_size"], rng)
    bar = tqdm(range(settings["iters"]), desc="classifier", unit="it", disable=not progress,
               leave=False, dynamic_ncols=True)
    for iteration in bar:
        index = next(index_batches)
        images = random_shift(train_set.images[index], rng, settings["max_shift"])
        logits = model.forward(xp.asarray(images[:, None]), train=True)
        loss, dlogits = softmax_cross_entropy(logits, xp.asarray(train_set.labels[index]))
        model.backward(dlogits)
        optimizer.lr = learning_rate(settings, iteration)
        optimizer.step(model.named_params(), model.named_grads())
        if progress and iteration % PROGRESS_EVERY == 0:
            bar.set_postfix(loss=f"{float(loss):.3f}")  # a read-back only when someone watches
    return model


def predict(model, images, xp, batch_size=INFERENCE_BATCH):
    """The digit (N,) int64 that `model` reads in each of `images` (N, 28, 28), on the host."""
    labels = [to_numpy(model.forward(xp.asarray(images[start:start + batch_size, None])).argmax(axis=1))
              for start in range(0, len(images), batch_size)]
    return np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, dtype=np.int64)


def accuracy(model, images, labels, xp, batch_size=INFERENCE_BATCH):
    """The fraction of `images` that `model` reads as their `labels`."""
    return float(np.mean(predict(model, images, xp, batch_size) == labels))


def classifier_tag(train_set):
    """Names the training digits: their count and a hash of their labels and pixels."""
    digest = hashlib.sha256(np.ascontiguousarray(train_set.labels).tobytes())
    digest.update(np.ascontiguousarray(train_set.images).tobytes())
    return f"{len(train_set)}-{digest.hexdigest()[:12]}"


def cache_path(tag):
    """classifier-<tag>.npz in the cache folder (mnist_half.data.default_cache_dir)."""
    return default_cache_dir() / f"classifier-{tag}.npz"


def save_classifier(path, model, meta):
    """`meta` as made by classifier_meta; a classifier has no optimizer state to keep."""
    save_checkpoint(path, model.named_params(), {}, meta)


def load_classifier(path, xp):
    """(model on module `xp`, metadata) from a file written by save_classifier."""
    params, _, meta = load_checkpoint(path)
    if meta.get("kind") != "classifier":
        raise CheckpointError(f"{path}: not a digit classifier (no kind 'classifier' in its metadata)")
    model = build_classifier(np.random.default_rng(0)).to(xp)
    model.load_params(params)
    return model, meta


def load_or_train_classifier(config, xp, train_set, progress=True, run_dir=None):
    """The classifier of `train_set`: run_dir/classifier.npz or the cache's, else a new one.

    A saved classifier counts only when its tag matches `train_set` (one trained on other
    digits may have seen this split's test digits). A new one is trained (about a minute
    on 2 CPU cores for the embedded split) and saved in the cache; stderr says so.
    """
    tag = classifier_tag(train_set)
    candidates = ([Path(run_dir) / RUN_FILE] if run_dir is not None else []) + [cache_path(tag)]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            model, meta = load_classifier(path, xp)
        except (CheckpointError, KeyError, ValueError) as error:
            print(f"mnist-half: ignoring {path} ({error})", file=sys.stderr)
            continue
        if meta.get("tag") == tag:
            return model, meta
        print(f"mnist-half: ignoring {path}: it was trained on other digits ({meta.get('tag')}, not {tag})",
              file=sys.stderr)
    path = cache_path(tag)
    check_writable_folder(path.parent, "the classifier cache (MNIST_HALF_CACHE)")
    print(f"mnist-half: no digit classifier for these training digits yet: training one ({path})", file=sys.stderr)
    start = time.perf_counter()
    model = train_classifier(train_set, xp, progress=progress)
    meta = classifier_meta(tag, train_set, config, seed=0, elapsed_s=time.perf_counter() - start)
    save_classifier(path, model, meta)
    return model, meta


def classifier_meta(tag, train_set, config, seed, elapsed_s, test_accuracy=None):
    """What a saved classifier records: its digits' tag, their source and split, how it was trained."""
    meta = {"format": 1, "kind": "classifier", "tag": tag, "source": train_set.source,
            "split": {k: config[k] for k in SPLIT_KEYS}, "seed": seed, "training": TRAINING,
            "elapsed_s": round(elapsed_s, 1)}
    if test_accuracy is not None:
        meta["test_accuracy"] = test_accuracy
    return meta
