"""python -m mnist_half.classifier: train the small CNN that reads digits for the evaluation.

A completion is judged not only by its pixel error but by whether it still shows the right
digit: `mnist_half.evaluate` runs this classifier on the reconstructions. It is trained
with softmax cross-entropy and Adam on the CLEAN training digits of a run's split only, so
it never saw a test digit, and saved as classifier-<tag>.npz in the cache, where <tag>
names the training digits (their count and a hash of their pixels and labels).
"""

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinynet.backend import get_xp, to_numpy
from tinynet.functional.losses import softmax_cross_entropy
from tinynet.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from tinynet.optim import Adam

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .cli import run_command
from .data import CLASSES, DEFAULT_CACHE, batches, random_shift
from .train import DEFAULTS, learning_rate, load_split

# About 17 epochs of the embedded split's 3,750 digits: ~98 % on its 1,250 clean test
# digits in about 40 s on 2 CPU cores (one BLAS thread). Random shifts of up to one pixel add about half
# a point there (97.4-97.9 % without, 98.0-98.6 % with, over three seeds).
TRAINING = {"iters": 1000, "batch_size": 64, "lr": 2e-3, "warmup": 50, "min_lr_ratio": 0.0, "max_shift": 1}
RUN_FILE = "classifier.npz"  # a classifier kept in a run folder, next to checkpoint.npz
SPLIT_KEYS = ("data", "test_fraction", "split_seed", "official_split")


def build_classifier(rng, dtype=np.float32):
    """(N, 1, 28, 28) -> (N, 10) logits: conv5x5 1->16, ReLU, pool, conv5x5 16->32, ReLU, pool, dense."""
    return Sequential([
        ("conv1", Conv2D(1, 16, 5, rng, dtype=dtype)),
        ("relu1", ReLU()),
        ("pool1", MaxPool2D(2, 2)),
        ("conv2", Conv2D(16, 32, 5, rng, dtype=dtype)),
        ("relu2", ReLU()),
        ("pool2", MaxPool2D(2, 2)),
        ("flatten", Flatten()),
        ("fc", Dense(32 * 7 * 7, CLASSES, rng, dtype=dtype)),
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
        if progress and iteration % 50 == 0:
            bar.set_postfix(loss=f"{float(loss):.3f}")  # a read-back only when someone watches
    return model


def predict(model, images, xp, batch_size=500):
    """The digit (N,) int64 that `model` reads in each of `images` (N, 28, 28), on the host."""
    labels = [to_numpy(model.forward(xp.asarray(images[start:start + batch_size, None])).argmax(axis=1))
              for start in range(0, len(images), batch_size)]
    return np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, dtype=np.int64)


def accuracy(model, images, labels, xp, batch_size=500):
    """The fraction of `images` that `model` reads as their `labels`."""
    return float(np.mean(predict(model, images, xp, batch_size) == labels))


def classifier_tag(train_set):
    """Names the training digits: their count and a hash of their labels and pixels."""
    digest = hashlib.sha256(np.ascontiguousarray(train_set.labels).tobytes())
    digest.update(np.ascontiguousarray(train_set.images).tobytes())
    return f"{len(train_set)}-{digest.hexdigest()[:12]}"


def cache_path(tag):
    """~/.cache/mnist-half/classifier-<tag>.npz (env MNIST_HALF_CACHE moves the folder)."""
    cache_dir = Path(os.environ.get("MNIST_HALF_CACHE") or DEFAULT_CACHE).expanduser()
    return cache_dir / f"classifier-{tag}.npz"


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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with the four MNIST IDX files (else the sources of mnist_half.train)")
    parser.add_argument("--official-split", action="store_true", help="MNIST's 60k/10k split (as train's option)")
    parser.add_argument("--out", help="where to save it (default: the cache, classifier-<tag>.npz)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and shuffling")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv=None):
    """Train on the split's clean training digits, report the clean test accuracy, save."""
    args = parse_args(argv)
    config = {**DEFAULTS, "data": args.data, "official_split": args.official_split}
    xp = get_xp(args.device)
    train_set, test_set = load_split(config, progress=not args.no_progress)
    start = time.perf_counter()
    model = train_classifier(train_set, xp, seed=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    test_accuracy = accuracy(model, test_set.images, test_set.labels, xp)
    tag = classifier_tag(train_set)
    path = Path(args.out) if args.out else cache_path(tag)
    save_classifier(path, model, classifier_meta(tag, train_set, config, args.seed, elapsed, test_accuracy))
    print(f"digit classifier: {100 * test_accuracy:.2f} % on {len(test_set):,} clean test digits after "
          f"{elapsed:.0f} s of training on {len(train_set):,} digits ({train_set.source})")
    print(f"wrote {path}")


if __name__ == "__main__":
    run_command(main)
