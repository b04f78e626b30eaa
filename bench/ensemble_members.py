"""python -m bench.ensemble_members RUN RUN [RUN ...] --data DIR: what averaging these runs
can give on the lower half, measured and projected.

Each run (single models with the same split and noise) redraws the held-out digits once. With
e_i the lower-half error of run i, the mean of n runs has the mean squared error
(1/n) M + (1 - 1/n) C, where M is the runs' mean squared error and C the mean of
E[e_i e_j] over the pairs: the part of the error that the runs share, which no number of
members removes. It prints each run alone, each pair's error correlation, the lower-half
RMSE of the mean of every subset, and that projection for more members of the same kind.
"""

import argparse
import itertools

import numpy as np

from mnist_half.config import INFERENCE_BATCH, NOISE_KEYS, SPLIT_KEYS, saved_config
from mnist_half.corruption import corrupt_held_out, lower_rows
from mnist_half.models import complete_images
from mnist_half.runs import checkpoint_path, load_split, load_trained

PROJECTED_MEMBERS = (4, 6, 8, 16)


def lower_half_errors(runs, data=None, limit=None):
    """Each run's lower-half errors (completion minus truth, float64) on the held-out digits
    of the first run's split, read from the folder `data` where given."""
    errors, first = [], None
    for run in runs:
        model, meta = load_trained(checkpoint_path(run), np)
        config = saved_config(meta)
        if data is not None:
            config["data"] = data
        if first is None:
            first = config
            clean = load_split(config, progress=False)[1].images[:limit]
            corrupted, truth = corrupt_held_out(clean, config), clean[:, lower_rows(clean)].astype(np.float64)
        differing = [key for key in SPLIT_KEYS + NOISE_KEYS if config[key] != first[key]]
        if differing:
            raise ValueError(f"{run}: differs from {runs[0]} in {', '.join(differing)}: other held-out digits")
        completed = complete_images(model, corrupted, np, INFERENCE_BATCH, 1, False)
        errors.append((completed[:, lower_rows(completed)] - truth).ravel())
    return errors


def rmse_of_mean(errors):
    """Lower-half RMSE of the mean completion of the runs whose errors are given."""
    return float(np.sqrt(np.mean(np.mean(errors, axis=0) ** 2)))


def projected_rmse(errors, members):
    """(1/n) M + (1 - 1/n) C (module docstring) for n = `members`, M and C from `errors`."""
    mse = np.mean([np.mean(e ** 2) for e in errors])
    shared = np.mean([np.mean(a * b) for a, b in itertools.combinations(errors, 2)])
    return float(np.sqrt(mse / members + (1 - 1 / members) * shared))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.ensemble_members", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders or checkpoints of single models (two or more)")
    parser.add_argument("--data", help="the folder of the runs' MNIST files, where their config's is not here")
    parser.add_argument("--limit", type=int, help="only the first LIMIT held-out digits")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give two runs or more")
    errors = lower_half_errors(args.runs, args.data, args.limit)
    names = dict(zip(args.runs, errors))
    for run, error in names.items():
        print(f"{run}: lower {rmse_of_mean([error]):.4f} alone")
    for (a, ea), (b, eb) in itertools.combinations(names.items(), 2):
        print(f"{a} and {b}: error correlation {np.corrcoef(ea, eb)[0, 1]:.4f}")
    for size in range(2, len(errors) + 1):
        for subset in itertools.combinations(args.runs, size):
            print(f"mean of {' + '.join(subset)}: lower {rmse_of_mean([names[r] for r in subset]):.4f}")
    projected = ", ".join(f"{n}: {projected_rmse(errors, n):.4f}" for n in PROJECTED_MEMBERS)
    print(f"projected for members like these: {projected}; the limit: {projected_rmse(errors, np.inf):.4f}")


if __name__ == "__main__":
    main()
