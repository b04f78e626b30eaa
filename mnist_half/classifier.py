"""python -m mnist_half.classifier: train the small CNN that reads digits for the evaluation.

A completion is judged not only by its pixel error but by whether it still shows the right
digit: `mnist_half.evaluate` runs this classifier (mnist_half.reader) on the
reconstructions. It is trained on the CLEAN training digits of a run's split only, so it
never saw a test digit, and saved as classifier-<tag>.npz in the cache, where <tag> names
the training digits (their count and a hash of their pixels and labels).
"""

import argparse
import time
from pathlib import Path

from tinynet.backend import get_xp

from .cli import add_device_arg, add_progress_arg, run_command
from .config import DEFAULTS
from .files import check_writable_folder
from .reader import accuracy, cache_path, classifier_meta, classifier_tag, save_classifier, train_classifier
from .runs import load_split


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.classifier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with the four MNIST IDX files (else the sources of mnist_half.train)")
    parser.add_argument("--official-split", action="store_true", help="MNIST's 60k/10k split (as train's option)")
    parser.add_argument("--out", help="where to save it (default: the cache, classifier-<tag>.npz)")
    add_device_arg(parser)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and shuffling")
    add_progress_arg(parser)
    return parser.parse_args(argv)


def main(argv=None):
    """Train on the split's clean training digits, report the clean test accuracy, save."""
    args = parse_args(argv)
    config = {**DEFAULTS, "data": args.data, "official_split": args.official_split}
    xp = get_xp(args.device)
    train_set, test_set = load_split(config, progress=not args.no_progress)
    tag = classifier_tag(train_set)
    path = Path(args.out) if args.out else cache_path(tag)
    check_writable_folder(path.parent, "the classifier's folder")
    start = time.perf_counter()
    model = train_classifier(train_set, xp, seed=args.seed, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    test_accuracy = accuracy(model, test_set.images, test_set.labels, xp)
    save_classifier(path, model, classifier_meta(tag, train_set, config, args.seed, elapsed, test_accuracy))
    print(f"digit classifier: {100 * test_accuracy:.2f} % on {len(test_set):,} clean test digits after "
          f"{elapsed:.0f} s of training on {len(train_set):,} digits ({train_set.source})")
    print(f"wrote {path}")


if __name__ == "__main__":
    run_command(main)
