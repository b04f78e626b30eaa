"""The evaluation: metric values on hand-made arrays, the report's table, and the command."""

import json
import math

import numpy as np
import pytest

from mnist_half.checkpoint import save_checkpoint
from mnist_half.config import DEFAULTS, PRESETS
from mnist_half.evaluation import METRICS, format_table, image_metrics, mean_squared_error, psnr, rmse
from mnist_half.models import build_model
from mnist_half.reader import RUN_FILE, build_classifier, classifier_meta, classifier_tag, save_classifier
from mnist_half.runs import load_split


@pytest.fixture
def pair():
    """Two 28x28 digits of zeros and their estimates: the first 0.5 too bright in rows 0..13
    only (MSE 0.125), the second 0.25 too bright everywhere (MSE 0.0625)."""
    y = np.zeros((2, 28, 28), dtype=np.float32)
    y_hat = y.copy()
    y_hat[0, :14] = 0.5
    y_hat[1] = 0.25
    return y_hat, y


def test_mean_squared_error_per_digit_and_half(pair):
    y_hat, y = pair
    np.testing.assert_array_equal(mean_squared_error(y_hat, y), [0.125, 0.0625])
    np.testing.assert_array_equal(mean_squared_error(y_hat, y, slice(0, 14)), [0.25, 0.0625])
    np.testing.assert_array_equal(mean_squared_error(y_hat, y, slice(14, None)), [0.0, 0.0625])


def test_eq15_rmse_is_over_the_set(pair):
    y_hat, y = pair
    assert rmse(y_hat, y) == pytest.approx(math.sqrt((0.125 + 0.0625) / 2), rel=1e-15)
    assert rmse(y_hat, y, slice(0, 14)) == pytest.approx(math.sqrt((0.25 + 0.0625) / 2), rel=1e-15)
    assert rmse(y_hat, y, slice(14, None)) == pytest.approx(0.25 / math.sqrt(2), rel=1e-15)


def test_psnr_is_averaged_over_digits(pair):
    y_hat, y = pair
    assert psnr(y_hat, y) == pytest.approx((10 * math.log10(8) + 10 * math.log10(16)) / 2, rel=1e-15)
    assert psnr(y, y) == pytest.approx(100.0)  # a perfect digit: the MSE floor, not infinity


def test_image_metrics_accuracy_counts_right_digits(pair):
    y_hat, y = pair
    metrics = image_metrics(y_hat, y, np.array([3, 7]), read_digits=lambda images: np.array([3, 1]))
    assert list(metrics) == list(METRICS)
    assert metrics["accuracy"] == 0.5


def test_table_is_aligned_with_a_dash_where_a_metric_does_not_apply(pair):
    y_hat, y = pair
    methods = {"cnn-lstm": image_metrics(y_hat, y, np.array([3, 7]), lambda images: np.array([3, 7])),
               "clean": {**dict.fromkeys(METRICS), "accuracy": 1.0}}
    report = {"model": "cnn-lstm", "iteration": 5, "trained_for": "iteration 5", "digits": 2, "noise": "sp",
              "methods": methods}
    lines = format_table(report).splitlines()
    assert lines[0] == "cnn-lstm at iteration 5: 2 test digits, noise sp"
    assert lines[1].split() == ["method", *METRICS]
    assert len({len(line) for line in lines[1:]}) == 1  # header, rule and rows share one width
    assert lines[-1].split() == ["clean", "-", "-", "-", "-", "100.00", "%"]


@pytest.fixture
def tiny_run(no_mnist_env, monkeypatch, tmp_path):
    """A checkpoint of an untrained small CNN-LSTM and an untrained classifier beside it (the
    real one takes a minute to train), on the embedded digits with an empty cache."""
    monkeypatch.setenv("MNIST_HALF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MNIST_HALF_OFFLINE", "1")
    config = {**DEFAULTS, **PRESETS["quick"], "hidden": 8, "layers": 1, "members": 1}
    rng = np.random.default_rng(0)
    model = build_model(config["model"], rng, config, mean_intensity=0.13)
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir / "checkpoint.npz", model.named_params(), {},
                    {"format": 1, "iteration": 0, "config": config, "elapsed_s": 0.0})
    train_set, _ = load_split(config, progress=False)
    tag = classifier_tag(train_set)
    save_classifier(run_dir / RUN_FILE, build_classifier(rng), classifier_meta(tag, train_set, config, 0, 0.0))
    return run_dir


def test_cli_prints_a_table_then_one_json_line(run_cli, tiny_run, capsys):
    run_cli("evaluate", ["--checkpoint", str(tiny_run / "checkpoint.npz"), "--limit", "20", "--json", "--no-progress"])
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert list(report["methods"]) == ["cnn-lstm", "input", "nearest-neighbour", "pca", "clean"]
    for name, metrics in report["methods"].items():
        assert list(metrics) == list(METRICS)
        assert 0 <= metrics["accuracy"] <= 1
        if name != "clean":
            assert all(isinstance(metrics[m], float) for m in METRICS)
    assert report["digits"] == 20
    assert json.loads((tiny_run / "metrics-limit20.json").read_text()) == report
    assert any(line.startswith("nearest-neighbour") for line in out)


def test_cli_dropout_samples_score_their_mean_in_their_own_file(run_cli, tiny_run, capsys):
    args = ["--checkpoint", str(tiny_run), "--limit", "20", "--json", "--no-progress"]
    run_cli("evaluate", args)
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run_cli("evaluate", [*args, "--samples", "3"])
    out = capsys.readouterr().out.strip().splitlines()
    sampled = json.loads(out[-1])
    assert "mean of 3 dropout samples" in out[0] and sampled["samples"] == 3 and plain["samples"] == 1
    assert sampled["methods"]["cnn-lstm"]["rmse"] != plain["methods"]["cnn-lstm"]["rmse"]
    assert sampled["methods"]["pca"] == plain["methods"]["pca"]  # only the network's row changes
    assert json.loads((tiny_run / "metrics-limit20-samples3.json").read_text()) == sampled
    assert json.loads((tiny_run / "metrics-limit20.json").read_text()) == plain
    with pytest.raises(SystemExit) as exit_info:
        run_cli("evaluate", [*args, "--samples", "0"])
    assert exit_info.value.code == 2 and "--samples must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["missing", "garbage", "not a run"])
def test_cli_bad_checkpoint_exits_2_with_one_line(run_cli, problem, tmp_path, capsys):
    path = tmp_path / "checkpoint.npz"
    if problem == "garbage":
        path.write_bytes(b"not a zip archive")
    elif problem == "not a run":
        save_checkpoint(path, {"W": np.zeros(3)}, {}, {"format": 1})
    with pytest.raises(SystemExit) as exit_info:
        run_cli("evaluate", ["--checkpoint", str(path), "--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(path) in err and "\n" not in err


def test_cli_unknown_device_exits_2(run_cli, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("evaluate", ["--checkpoint", str(tmp_path / "checkpoint.npz"), "--device", "tpu"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err
