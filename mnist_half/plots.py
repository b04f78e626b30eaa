"""The paper's Figures 5, 6 and 7 from one or two training runs (mnist_half.runs.Run).

figure5  the corruption of the training data (section 5.1): original, lower half blanked,
         noise added, for a few test digits;
figure6  each run's training loss over the iterations, faint, with a fitted log trend
         line a ln(iteration) + b in bold and the held-out loss as points (section 6);
figure7  for the same fixed test digits: Input, CNN-CNN, CNN-LSTM, Original (section 6),
         with the columns of whichever models the runs hold.
Drawn with Matplotlib's Agg canvas, without pyplot's global state.
"""

import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tinynet.backend import get_xp

from .cli import UsageError
from .config import LOG
from .corruption import blank_lower_half, corrupt_held_out
from .files import atomic_output
from .models import complete_images
from .runs import data_kind, load_runs, load_split, load_trained

COLOURS = {"cnn-cnn": "tab:orange", "cnn-lstm": "tab:blue"}
FIGURE5_DIGITS = 4
FIGURE7_DIGITS = 8
DPI = 120
CELL_INCHES = 1.1  # one digit of a grid
TITLE_INCHES = 0.6  # the grid's title above its rows
FIGURE6_INCHES = (8, 5)
TREND_POINTS = 200  # points of a drawn log trend line


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


def save(fig, path):
    path = Path(path)
    FigureCanvasAgg(fig)  # render with Agg, without pyplot's global state
    with atomic_output(path) as f:
        fig.savefig(f, dpi=DPI, format="png")


def image_grid(columns, path, title):
    """A grid of digits: one column per {title: images (K, 28, 28)}, one row per digit."""
    rows = len(next(iter(columns.values())))
    fig = Figure(figsize=(CELL_INCHES * len(columns), CELL_INCHES * rows + TITLE_INCHES), layout="constrained")
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
    noisy = corrupt_held_out(images, {"noise": noise, "noise_amount": amount})
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
    fig = Figure(figsize=FIGURE6_INCHES, layout="constrained")
    ax = fig.subplots()
    for run in runs:
        iterations, losses = run.log["train"]
        if not len(iterations):
            raise UsageError(f"{run.folder / LOG}: holds no training loss yet")
        colour = COLOURS[run.model]
        ax.plot(iterations, losses, color=colour, alpha=0.3, linewidth=1, label=f"{run.label} training loss")
        if len(np.unique(iterations)) >= 2:
            a, b = fit_log_trend(iterations, losses)
            grid = np.geomspace(iterations.min(), iterations.max(), TREND_POINTS)
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


def figure7(runs, path, count=FIGURE7_DIGITS, images=None, device="auto"):
    """Figure 7: Input, CNN-CNN, CNN-LSTM, Original for `count` fixed test digits
    (pick_digits), or for the clean digits `images` (K, 28, 28) when given (`count` unused)."""
    runs = load_runs(runs)
    clean = test_digits(runs[0], count) if images is None else images
    noisy = corrupt_held_out(clean, runs[0].config)
    xp = get_xp(device)
    columns = {"Input": noisy}
    for run in runs:
        model, _ = load_trained(run.folder, xp)
        columns[run.label] = complete_images(model, noisy, xp)
    columns["Original"] = clean
    image_grid(columns, path, "Completed digits")


def all_figures(runs, out, count=FIGURE7_DIGITS):
    """figure5.png, figure6.png and figure7.png of `runs` in folder `out`; returns the Runs."""
    runs = load_runs(runs)
    config = runs[0].config
    clean = test_digits(runs[0], max(count, FIGURE5_DIGITS))
    out = Path(out)
    figure6(runs, out / "figure6.png")
    figure5(clean[:FIGURE5_DIGITS], out / "figure5.png", config["noise"], config["noise_amount"])
    figure7(runs, out / "figure7.png", images=clean[:count])
    return runs
