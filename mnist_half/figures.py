"""python -m mnist_half.figures: the paper's Figures 5, 6 and 7 from one or two training runs.

figure5.png  the corruption of the training data (section 5.1): original, lower half
             blanked, noise added, for a few test digits;
figure6.png  each run's training loss over the iterations, faint, with a fitted log trend
             line a ln(iteration) + b in bold and the held-out loss as points (section 6);
figure7.png  for the same fixed test digits: Input, CNN-CNN, CNN-LSTM, Original (section 6),
             with the columns of whichever models the runs hold.
The runs (at most one per model) must share their data, split and noise.
"""

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tinynet.backend import get_xp

from .checkpoint import load_checkpoint
from .cli import UsageError, run_command
from .complete import MODEL_LABELS, complete_images, load_model
from .corruption import blank_lower_half, corrupt_test_set
from .train import CHECKPOINT, TEST_NOISE_SEED, load_split

LOG = "log.csv"
MODEL_ORDER = ("cnn-cnn", "cnn-lstm")  # Figure 7's column order
COLOURS = {"cnn-cnn": "tab:orange", "cnn-lstm": "tab:blue"}
# Config entries that decide which digits are test digits and how they are corrupted.
SPLIT_KEYS = ("data", "official_split", "test_fraction", "split_seed", "noise", "noise_amount")
FIGURE5_DIGITS = 4
DPI = 120
CELL_INCHES = 1.1  # one digit of a grid


# --- runs ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """A training run folder: its checkpoint's metadata and its log (see read_log)."""

    folder: Path
    meta: dict
    log: dict

    @property
    def config(self):
        return self.meta["config"]

    @property
    def model(self):
        return self.config["model"]

    @property
    def label(self):
        return MODEL_LABELS[self.model]


def load_run(folder):
    """The Run in `folder`; a missing folder, an unreadable checkpoint or log is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"run folder {folder} does not exist")
    for name in (CHECKPOINT, LOG):
        if not (folder / name).is_file():
            raise UsageError(f"run folder {folder} has no {name}")
    _, _, meta = load_checkpoint(folder / CHECKPOINT)
    model = meta.get("config", {}).get("model")
    if model not in MODEL_LABELS:
        raise UsageError(f"{folder / CHECKPOINT}: unknown model {model!r}")
    return Run(folder, meta, read_log(folder / LOG))


def data_kind(source):
    """'embedded' or 'MNIST' for a dataset's `source`: a split of one is no split of the other."""
    return "embedded" if source.startswith("embedded") else "MNIST"


def load_runs(runs):
    """Runs (folders or Run objects), checked to hold at most one run per model and to share
    data, split and noise, in Figure 7's column order."""
    runs = [run if isinstance(run, Run) else load_run(run) for run in runs]
    if not runs:
        raise UsageError("no runs given")
    by_model = {}
    for run in runs:
        if run.model in by_model:
            raise UsageError(f"{by_model[run.model].folder} and {run.folder} are both {run.label} runs: "
                             "give at most one run per model")
        by_model[run.model] = run
    first = runs[0]
    for run in runs[1:]:
        differ = [key for key in SPLIT_KEYS if run.config.get(key) != first.config.get(key)]
        if data_kind(run.meta.get("data_source", "")) != data_kind(first.meta.get("data_source", "")):
            differ.append("data source")
        if differ:
            raise UsageError(f"runs {first.folder} and {run.folder} differ in {', '.join(differ)}: "
                             "they must share the data split and noise to be compared")
    return [by_model[model] for model in MODEL_ORDER if model in by_model]


def read_log(path):
    """{'train': (iterations, losses), 'test': (iterations, losses)} from a run's log.csv,
    whose rows hold either a train_loss or a test_loss."""
    columns = {"train": "train_loss", "test": "test_loss"}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"iteration", *columns.values()} - set(reader.fieldnames or ())
            if missing:
                raise UsageError(f"{path}: lacks the column(s) {', '.join(sorted(missing))}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{path}: not a readable log ({error})") from None
    series = {kind: ([], []) for kind in columns}
    for line, row in enumerate(rows, start=2):
        for kind, column in columns.items():
            if row.get(column):
                try:
                    iteration, loss = int(row["iteration"]), float(row[column])
                except (TypeError, ValueError):
                    raise UsageError(f"{path}, line {line}: iteration {row['iteration']!r}, "
                                     f"{column} {row[column]!r} are not numbers") from None
                series[kind][0].append(iteration)
                series[kind][1].append(loss)
    return {kind: (np.array(its, dtype=np.int64), np.array(losses)) for kind, (its, losses) in series.items()}


def pick_digits(labels, count):
    """Indices of `count` digits in class order 0, 1, ..., 9, 0, 1, ... (first occurrences
    first), so a figure shows every class; classes that run out are skipped."""
    if not 0 < count <= len(labels):
        raise UsageError(f"cannot pick {count} digits: the test split holds {len(labels)}")
    rank = np.empty(len(labels), dtype=np.int64)  # occurrence number of each digit within its class
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = np.arange(len(members))
    return np.lexsort((labels, rank))[:count]


def test_digits(run, count):
    """`count` clean test digits (count, 28, 28) of the run's split, picked by pick_digits."""
    _, test = load_split(run.config, progress=False)
    trained_on = run.meta.get("data_source", "")
    if data_kind(test.source) != data_kind(trained_on):
        print(f"warning: {run.folder} was trained on {trained_on.split(';')[0]}, but the digits at hand now "
              f"are {test.source.split(';')[0]}: its test split may hold digits it was trained on",
              file=sys.stderr)
    return test.images[pick_digits(test.labels, count)]


def corrupt_like_evaluation(images, config):
    """The fixed corruption (seed TEST_NOISE_SEED) that evaluations apply to test digits."""
    return corrupt_test_set(images, config["noise"], TEST_NOISE_SEED, config["noise_amount"])


# --- drawing -------------------------------------------------------------------------------

def save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)  # render with Agg, without pyplot's global state
    fig.savefig(path, dpi=DPI)


def image_grid(columns, path, title):
    """A grid of digits: one column per {title: images (K, 28, 28)}, one row per digit."""
    rows = len(next(iter(columns.values())))
    fig = Figure(figsize=(CELL_INCHES * len(columns), CELL_INCHES * rows + 0.6), layout="constrained")
    fig.suptitle(title, fontsize=10)
    axes = fig.subplots(rows, len(columns), squeeze=False)
    for col, (name, images) in enumerate(columns.items()):
        axes[0, col].set_title(name, fontsize=9)
        for row, image in enumerate(images):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
    save(fig, path)


def figure5(images, path, noise="sp", amount=None):
    """Figure 5: clean digits (K, 28, 28), their lower half blanked, then noise on top
    (the fixed evaluation corruption, so the rows match Figure 7's inputs)."""
    noisy = corrupt_like_evaluation(images, {"noise": noise, "noise_amount": amount})
    image_grid({"Original": images, "Lower half\nblanked": blank_lower_half(images), "Noise\nadded": noisy},
               path, "Training data generation")


def fit_log_trend(iterations, losses):
    """(a, b) of the least-squares trend line loss ~ a ln(iteration) + b (Figure 6);
    needs two or more distinct positive iterations."""
    iterations = np.asarray(iterations, dtype=np.float64)
    if np.any(iterations <= 0) or len(np.unique(iterations)) < 2:
        raise ValueError("a log trend needs two or more distinct positive iterations")
    a, b = np.polyfit(np.log(iterations), np.asarray(losses, dtype=np.float64), 1)
    return float(a), float(b)


def figure6(runs, path):
    """Figure 6: each run's training loss (faint), its log trend line (bold) and its
    held-out loss (points). `runs`: run folders or Run objects."""
    runs = load_runs(runs)
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for run in runs:
        iterations, losses = run.log["train"]
        if not len(iterations):
            raise UsageError(f"{run.folder / LOG}: holds no training loss yet")
        colour = COLOURS[run.model]
        ax.plot(iterations, losses, color=colour, alpha=0.3, linewidth=1, label=f"{run.label} training loss")
        if len(np.unique(iterations)) >= 2:
            a, b = fit_log_trend(iterations, losses)
            grid = np.geomspace(iterations.min(), iterations.max(), 200)
            ax.plot(grid, a * np.log(grid) + b, color=colour, linewidth=2.5,
                    label=f"{run.label} log trend {a:.3g} ln(i) + {b:.3g}")
        test_iterations, test_losses = run.log["test"]
        if len(test_iterations):
            ax.plot(test_iterations, test_losses, "o", color=colour, markersize=5,
                    markeredgecolor="black", markeredgewidth=0.5, label=f"{run.label} test loss")
    ax.set_xlabel("iteration")
    ax.set_ylabel("RMSE loss")
    ax.set_title("Movement of the loss, with fitted log trend lines")
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, path)


def figure7(runs, path, count=8, images=None):
    """Figure 7: Input, CNN-CNN, CNN-LSTM, Original for `count` fixed test digits
    (pick_digits), or for the clean digits `images` (K, 28, 28) when given (`count` unused)."""
    runs = load_runs(runs)
    config = runs[0].config
    clean = test_digits(runs[0], count) if images is None else images
    noisy = corrupt_like_evaluation(clean, config)
    xp = get_xp("auto")
    columns = {"Input": noisy}
    for run in runs:
        model, _ = load_model(run.folder / CHECKPOINT, xp)
        columns[run.label] = complete_images(model, noisy, xp)
    columns["Original"] = clean
    image_grid(columns, path, "Completed digits")


# --- the command ---------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (at most one per model)")
    parser.add_argument("--out", required=True, help="folder for figure5.png, figure6.png, figure7.png")
    parser.add_argument("--count", type=int, default=8, help="digits in Figure 7")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.count <= 0:
        raise UsageError(f"--count must be positive, got {args.count}")
    runs = load_runs(args.runs)
    config = runs[0].config
    clean = test_digits(runs[0], max(args.count, FIGURE5_DIGITS))
    out = Path(args.out)
    figure6(runs, out / "figure6.png")
    figure5(clean[:FIGURE5_DIGITS], out / "figure5.png", config["noise"], config["noise_amount"])
    figure7(runs, out / "figure7.png", images=clean[:args.count])
    print(f"wrote {out}/figure5.png, figure6.png, figure7.png ({', '.join(run.label for run in runs)})")


if __name__ == "__main__":
    run_command(main)
