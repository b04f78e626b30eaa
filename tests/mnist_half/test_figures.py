"""python -m mnist_half.figures: Figures 5, 6 and 7 from run folders, the log trend fit of
Figure 6, and the checks that runs can be compared."""

import csv
import struct

import numpy as np
import pytest

from mnist_half.checkpoint import save_checkpoint
from mnist_half.cli import EXIT_USAGE
from mnist_half.config import DEFAULTS, PRESETS
from mnist_half.data import IDX_PAIRS, write_idx
from mnist_half.models import build_model
from mnist_half.plots import (
    CELL_INCHES,
    DPI,
    FIGURE5_DIGITS,
    TITLE_INCHES,
    figure6,
    figure7,
    fit_log_trend,
    pick_digits,
)
from mnist_half.runs import load_split

pytestmark = pytest.mark.usefixtures("no_mnist_env")  # the runs name their own data folder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRUE_A, TRUE_B = -0.021, 0.31  # Figure 6's synthetic loss = a ln(iteration) + b


def write_mini_mnist(folder, n_train=30, n_test=10):
    """Four IDX files of random digits whose labels cycle 0..9 (a split then holds every class)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for (image_stem, label_stem), n in zip(IDX_PAIRS, (n_train, n_test)):
        write_idx(folder / image_stem, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / label_stem, (np.arange(n) % 10).astype(np.uint8))
    return folder


def make_run(folder, model, data, with_log=True, data_source=None, **overrides):
    """A run folder as training leaves it: checkpoint.npz and a log.csv whose training loss
    follows TRUE_A ln(i) + TRUE_B plus noise, with a test loss every 100 iterations."""
    config = {**DEFAULTS, **PRESETS["quick"], "model": model, "hidden": 8, "layers": 2, "members": 1, "data": str(data),
              **overrides}
    net = build_model(model, np.random.default_rng(0), config, mean_intensity=0.13)
    train, _ = load_split(config, progress=False)
    meta = {"format": 1, "iteration": 500, "config": config, "elapsed_s": 1.0,
            "data_source": data_source or train.source}
    save_checkpoint(folder / "checkpoint.npz", net.named_params(), {}, meta)
    if with_log:
        rng = np.random.default_rng(1)
        with open(folder / "log.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["iteration", "train_loss", "test_loss", "elapsed_s"])
            for it in range(50, 501, 50):
                writer.writerow([it, f"{TRUE_A * np.log(it) + TRUE_B + rng.normal(0, 0.005):.5f}", "", "0.1"])
                if it % 100 == 0:
                    writer.writerow([it, "", f"{TRUE_A * np.log(it) + TRUE_B:.5f}", "0.1"])
    return folder


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return write_mini_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist):
    root = tmp_path_factory.mktemp("runs")
    return {model: make_run(root / model, model, mnist) for model in ("cnn-lstm", "cnn-cnn")}


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def grid_size(columns, rows):
    """Pixel size of an image grid of `columns` x `rows` digits."""
    return round(CELL_INCHES * columns * DPI), round((CELL_INCHES * rows + TITLE_INCHES) * DPI)


def test_fit_log_trend_recovers_the_coefficients(rng):
    iterations = np.arange(10, 5001, 10)
    exact = TRUE_A * np.log(iterations) + TRUE_B
    a, b = fit_log_trend(iterations, exact)
    assert a == pytest.approx(TRUE_A, rel=1e-10) and b == pytest.approx(TRUE_B, rel=1e-10)
    a, b = fit_log_trend(iterations, exact + rng.normal(0, 0.01, len(iterations)))
    assert a == pytest.approx(TRUE_A, abs=1e-3) and b == pytest.approx(TRUE_B, abs=6e-3)


@pytest.mark.parametrize("iterations", [[100], [100, 100], [0, 100]], ids=["one", "same", "zero"])
def test_fit_log_trend_needs_two_distinct_positive_iterations(iterations):
    with pytest.raises(ValueError, match="two or more distinct positive"):
        fit_log_trend(iterations, np.ones(len(iterations)))


def test_pick_digits_goes_through_the_classes_in_order():
    labels = np.array([3, 1, 0, 1, 2, 0, 3, 3])
    index = pick_digits(labels, 6)
    np.testing.assert_array_equal(labels[index], [0, 1, 2, 3, 0, 1])
    np.testing.assert_array_equal(index[:4], [2, 1, 4, 0])  # first occurrences first


def test_figures_command_writes_three_pngs(run_cli, tmp_path, runs, capsys):
    count = 5
    run_cli("figures", ["--runs", str(runs["cnn-lstm"]), str(runs["cnn-cnn"]), "--out", str(tmp_path),
                       "--count", str(count)])
    assert png_size(tmp_path / "figure5.png") == grid_size(3, FIGURE5_DIGITS)
    assert png_size(tmp_path / "figure6.png") == (8 * DPI, 5 * DPI)
    assert png_size(tmp_path / "figure7.png") == grid_size(4, count)  # Input, CNN-CNN, CNN-LSTM, Original
    assert "figure7.png" in capsys.readouterr().out


def test_figure6_and_figure7_of_a_single_run(tmp_path, runs):
    """What training calls at its end, for its own run folder."""
    figure6([runs["cnn-cnn"]], tmp_path / "f6.png")
    figure7([runs["cnn-cnn"]], tmp_path / "f7.png", count=3)
    assert png_size(tmp_path / "f6.png") == (8 * DPI, 5 * DPI)
    assert png_size(tmp_path / "f7.png") == grid_size(3, 3)  # Input, CNN-CNN, Original


# --- bad runs: one line naming the problem, exit status 2 -----------------------------------

@pytest.fixture
def expect_usage_error(run_cli):
    """expect_usage_error(capsys, argv, words): the figures command exits 2 with one line holding `words`."""
    return lambda capsys, argv, words: _expect_usage_error(run_cli, capsys, argv, words)


def _expect_usage_error(run_cli, capsys, argv, words):
    with pytest.raises(SystemExit) as exit_:
        run_cli("figures", argv)
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error:") and words in err, err


@pytest.mark.parametrize("overrides, words", [({"noise": "gauss"}, "differ in noise"),
                                              ({"split_seed": 3}, "differ in split_seed")],
                         ids=["noise", "split"])
def test_runs_with_different_data_are_an_error(expect_usage_error, tmp_path, mnist, runs, capsys, overrides, words):
    other = make_run(tmp_path / "other", "cnn-cnn", mnist, **overrides)
    expect_usage_error(capsys, ["--runs", str(runs["cnn-lstm"]), str(other), "--out", str(tmp_path / "f")], words)
    assert not (tmp_path / "f").exists()


def test_runs_on_different_data_sources_are_an_error(expect_usage_error, tmp_path, mnist, runs, capsys):
    other = make_run(tmp_path / "other", "cnn-cnn", mnist, data_source="embedded: 5,000 MNIST digits; train")
    expect_usage_error(capsys, ["--runs", str(runs["cnn-lstm"]), str(other), "--out", str(tmp_path / "f")],
                       "differ in data source")


def test_a_run_trained_on_other_digits_than_those_at_hand_is_warned_about(tmp_path, mnist, capsys):
    run = make_run(tmp_path / "run", "cnn-cnn", mnist, data_source="embedded: 5,000 MNIST digits; train")
    figure7([run], tmp_path / "f7.png", count=2)
    assert "may hold digits it was trained on" in capsys.readouterr().err


def test_two_runs_of_one_model_are_an_error(expect_usage_error, tmp_path, mnist, runs, capsys):
    twin = make_run(tmp_path / "twin", "cnn-lstm", mnist)
    expect_usage_error(capsys, ["--runs", str(runs["cnn-lstm"]), str(twin), "--out", str(tmp_path / "f")],
                       "both CNN-LSTM runs")


def test_missing_run_folder_checkpoint_or_log_is_an_error(expect_usage_error, tmp_path, mnist, capsys):
    out = ["--out", str(tmp_path / "f")]
    expect_usage_error(capsys, ["--runs", str(tmp_path / "nowhere"), *out], "does not exist")
    (tmp_path / "empty").mkdir()
    expect_usage_error(capsys, ["--runs", str(tmp_path / "empty"), *out], "has no checkpoint.npz")
    (tmp_path / "no-log").mkdir()
    make_run(tmp_path / "no-log", "cnn-cnn", mnist, with_log=False)
    expect_usage_error(capsys, ["--runs", str(tmp_path / "no-log"), *out], "has no log.csv")
    (tmp_path / "no-log" / "log.csv").write_text("iteration,train_loss,test_loss,elapsed_s\n50,oops,,1\n")
    expect_usage_error(capsys, ["--runs", str(tmp_path / "no-log"), *out], "line 2")
    (tmp_path / "no-log" / "log.csv").write_text("iteration,train_loss,test_loss,elapsed_s\n50,,0.3,1\n")
    expect_usage_error(capsys, ["--runs", str(tmp_path / "no-log"), *out], "holds no training loss")
    (tmp_path / "no-log" / "log.csv").write_text("step,loss\n1,2\n")
    expect_usage_error(capsys, ["--runs", str(tmp_path / "no-log"), *out], "lacks the column(s)")


def test_bad_count_is_an_error(expect_usage_error, tmp_path, runs, capsys):
    run = str(runs["cnn-cnn"])
    expect_usage_error(capsys, ["--runs", run, "--out", str(tmp_path), "--count", "0"], "--count")
    expect_usage_error(capsys, ["--runs", run, "--out", str(tmp_path), "--count", "999"], "cannot pick 999")
