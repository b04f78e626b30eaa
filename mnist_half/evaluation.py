"""How well a trained run redraws its held-out digits.

The run's test digits (its own data source and seeded split) are corrupted as in Figure 5
with the fixed test seed, then completed by the network, by nearest neighbours and by PCA
(mnist_half.baselines); the corrupted input itself is the floor to beat. A run of several
members (train --members) completes with their mean. For each method:
  rmse        eq. (15) over the whole image: the root of the mean squared error over all
              pixels of all digits (the set, not a mean of per-digit values);
  rmse_upper  the same over rows 0..13, the half that is only denoised;
  rmse_lower  the same over rows 14..27, the half that must be redrawn;
  psnr_db     10 log10(1 / MSE) with peak 1.0, from each digit's whole-image MSE, then
              averaged over the digits;
  accuracy    the fraction of completions that the digit classifier (mnist_half.reader,
              trained on the run's clean training digits) reads as the right digit.
The row `clean` is the classifier on the original digits: the ceiling for `accuracy`.
samples K > 1 scores the network's mean of K passes with dropout on (Monte Carlo
dropout; mnist_half.models.complete_images) instead of its one deterministic pass.
"""

import math
import sys
from pathlib import Path

import numpy as np

from tinynet.backend import get_xp

from .baselines import fit_pca, nearest_neighbour_completion, pca_completion
from .cli import UsageError, require_positive, require_samples
from .config import INFERENCE_BATCH, METRICS_FILE, saved_config
from .corruption import corrupt_held_out, lower_rows, upper_rows
from .models import complete_images
from .reader import load_or_train_classifier, predict
from .runs import checkpoint_path, load_split, load_trained, trained_for

IMAGE_METRICS = ("rmse", "rmse_upper", "rmse_lower", "psnr_db")
METRICS = (*IMAGE_METRICS, "accuracy")
PSNR_MSE_FLOOR = 1e-10  # a perfect digit counts as 100 dB rather than infinity
DEFINITIONS = {
    "rmse": "over the set: root of the mean squared error over all pixels (of rows 0-13 / 14-27) of all digits",
    "psnr_db": "10 log10(1 / MSE) per digit from its whole-image MSE (peak 1.0), then averaged over the digits",
    "accuracy": "fraction read as the right digit by a classifier trained on the run's clean training digits",
}


def mean_squared_error(y_hat, y, rows=slice(None)):
    """Per digit: mean over the pixels of `rows` of (y_hat - y)^2. (N, H, W) x 2 -> (N,)."""
    diff = (y_hat[:, rows] - y[:, rows]).astype(np.float64)
    return (diff * diff).mean(axis=(1, 2))


def rmse(y_hat, y, rows=slice(None)):
    """Eq. (15) over the set: sqrt of the mean squared error over every pixel of `rows`."""
    return math.sqrt(float(mean_squared_error(y_hat, y, rows).mean()))


def psnr(y_hat, y):
    """Mean over the digits of 10 log10(1 / MSE_i) (peak 1.0), MSE_i over the whole image."""
    mse = np.maximum(mean_squared_error(y_hat, y), PSNR_MSE_FLOOR)
    return float(np.mean(10 * np.log10(1 / mse)))


def image_metrics(y_hat, y, labels, read_digits):
    """{metric: value} for completions `y_hat` of digits `y`; read_digits(images) -> labels."""
    return {
        "rmse": rmse(y_hat, y),
        "rmse_upper": rmse(y_hat, y, upper_rows(y)),
        "rmse_lower": rmse(y_hat, y, lower_rows(y)),
        "psnr_db": psnr(y_hat, y),
        "accuracy": float(np.mean(read_digits(y_hat) == labels)),
    }


def evaluate_checkpoint(path, device="auto", batch_size=INFERENCE_BATCH, progress=True, limit=None, samples=1,
                        data=None):
    """Evaluate the run saved at `path` (see the module docstring); returns the report as a dict.

    data: the folder of the run's digits where it is not the one its config names (the run
    moved to another machine); a config naming a folder that is not here asks for it.

    limit: evaluate only the first `limit` test digits (quick checks); samples: dropout passes
    averaged per completion (1: the deterministic pass). The report's
    "methods" maps each method (the model's name, input, nearest-neighbour, pca, clean) to
    {metric: value}; image metrics of `clean` are None (it is the reference itself).
    """
    require_positive(limit=limit, batch_size=batch_size)
    require_samples(samples)
    xp = get_xp(device)
    path = checkpoint_path(path)
    model, meta = load_trained(path, xp)
    config = saved_config(meta)
    if data is not None:
        config["data"] = data
    elif config["data"] and not Path(config["data"]).is_dir():
        raise UsageError(f"{path} was trained on the digits in {config['data']}, which is not a folder here: give "
                         f"the folder of those MNIST files with --data DIR (the split, seed {config['split_seed']}, "
                         f"is then the same)")
    train_set, test_set = load_split(config, progress=progress)
    if meta.get("data_source") not in (None, train_set.source):
        print(f"mnist-half: note: the run trained on: {meta['data_source']}; evaluating on: {train_set.source}",
              file=sys.stderr)
    clean, labels = test_set.images[:limit], test_set.labels[:limit]
    corrupted = corrupt_held_out(clean, config)

    # first, so that a cache that cannot take a new classifier is found before the long work
    classifier, classifier_meta = load_or_train_classifier(config, xp, train_set, progress, run_dir=path.parent)
    completions = {
        config["model"]: complete_images(model, corrupted, xp, batch_size, samples, progress),
        "input": corrupted,
        "nearest-neighbour": nearest_neighbour_completion(corrupted, train_set.images, batch_size=batch_size,
                                                          progress=progress),
        "pca": pca_completion(corrupted, fit_pca(train_set.images), progress=progress),
    }

    def read_digits(images):
        return predict(classifier, images, xp, batch_size)

    methods = {name: image_metrics(y_hat, clean, labels, read_digits) for name, y_hat in completions.items()}
    methods["clean"] = {**dict.fromkeys(IMAGE_METRICS), "accuracy": float(np.mean(read_digits(clean) == labels))}
    return {
        "checkpoint": str(path),
        "model": config["model"],
        "members": config["members"],
        "iteration": meta.get("iteration"),
        "trained_for": trained_for(meta),
        "noise": config["noise"],
        "noise_amount": config["noise_amount"],
        "digits": len(clean),
        "samples": samples,
        "data_source": test_set.source,
        "classifier": classifier_meta["tag"],
        "definitions": DEFINITIONS,
        "methods": methods,
    }


def format_table(report):
    """The methods as rows and the metrics as columns, aligned; '-' where a value does not apply."""
    def cell(metric, value):
        if value is None:
            return "-"
        if metric == "accuracy":
            return f"{100 * value:.2f} %"
        if metric == "psnr_db":
            return f"{value:.2f} dB"
        return f"{value:.4f}"

    header = ("method", *METRICS)
    rows = [(name, *(cell(m, values[m]) for m in METRICS)) for name, values in report["methods"].items()]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(text.ljust(w) if i == 0 else text.rjust(w) for i, (text, w) in enumerate(zip(row, widths)))
             for row in (header, *rows)]
    samples = report.get("samples", 1)
    members = report.get("members", 1)
    title = (f"{report['model']}{f' (mean of {members} members)' if members > 1 else ''} at {report['trained_for']}: "
             f"{report['digits']:,} test digits, "
             f"noise {report['noise']}{f', mean of {samples} dropout samples' if samples > 1 else ''}")
    return "\n".join([title, lines[0], "-" * len(lines[0]), *lines[1:]])


def metrics_path(checkpoint, limit, samples=1):
    """metrics.json beside the checkpoint; a --limit or --samples run writes
    metrics-limit<N>.json, metrics-samples<K>.json or metrics-limit<N>-samples<K>.json
    instead, so a variant never overwrites the plain full evaluation."""
    parts = ([] if limit is None else [f"limit{limit}"]) + ([] if samples == 1 else [f"samples{samples}"])
    stem, suffix = METRICS_FILE.rsplit(".", 1)
    return checkpoint.parent / ("-".join([stem, *parts]) + "." + suffix)
