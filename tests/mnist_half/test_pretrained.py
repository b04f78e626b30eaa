"""The CNN-LSTM that ships with the package (config.PRETRAINED): it loads, says how it was
made, and completes digits with no --checkpoint; runs.export_for_inference makes such a file,
of one run or of several (their Ensemble)."""

import numpy as np
import pytest

from mnist_half.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mnist_half.cli import UsageError
from mnist_half.config import DEFAULTS, PRESETS, PRETRAINED
from mnist_half.corruption import corrupt_held_out, lower_rows
from mnist_half.data import load_embedded
from mnist_half.evaluation import evaluate_checkpoint
from mnist_half.models import Ensemble, build_model
from mnist_half.runs import export_for_inference, load_trained, trained_for


def test_the_packaged_model_loads_and_says_how_it_was_made():
    model, meta = load_trained(PRETRAINED, np)
    assert meta["config"]["model"] == "cnn-lstm" and meta["inference_only"]
    assert all(value.dtype == np.float32 for value in model.named_params().values())
    provenance = meta["provenance"]
    assert {"command", "data", "held_out", "metrics"} <= set(provenance)
    assert 0 < provenance["metrics"]["rmse_lower"] < 0.25 and 0.5 < provenance["metrics"]["accuracy"] <= 1
    _, optimizer_state, _ = load_checkpoint(PRETRAINED)
    assert optimizer_state == {}  # weights only: a few MB


def test_complete_without_a_checkpoint_uses_the_packaged_model(run_cli, tmp_path, capsys):
    clean = load_embedded().images[:8]
    corrupted = corrupt_held_out(clean, DEFAULTS)
    np.save(tmp_path / "in.npy", corrupted)
    run_cli("complete", ["--input", tmp_path / "in.npy", "--output", tmp_path / "out.npy", "--device", "cpu"])
    assert str(PRETRAINED) in capsys.readouterr().out
    completed = np.load(tmp_path / "out.npy")
    assert completed.shape == clean.shape and 0 <= completed.min() and completed.max() <= 1
    lower = lower_rows(clean)
    drawn = np.sqrt(np.mean((completed[:, lower] - clean[:, lower]) ** 2))
    blank = np.sqrt(np.mean(clean[:, lower] ** 2))
    assert drawn < 0.8 * blank  # it redraws the lower half, much closer than leaving it black


def tiny_run(path, data=None, seed=0, hidden=8, iteration=5, **changes):
    """A run checkpoint of a small CNN-LSTM with a weight average, as training saves one;
    `changes`: other config entries."""
    config = {**DEFAULTS, **PRESETS["quick"], "hidden": hidden, "layers": 2, "members": 1, "data": data, "seed": seed,
              **changes}
    model = build_model("cnn-lstm", np.random.default_rng(seed), config, mean_intensity=0.13)
    params = model.named_params()
    average = {**{name: value + 1 for name, value in params.items()}, "t": np.array(5)}
    optimizer = {"t": np.array(5), **{f"m/{name}": np.zeros_like(value) for name, value in params.items()}}
    meta = {"iteration": iteration, "config": config, "elapsed_s": 1.0, "data_source": "test"}
    save_checkpoint(path, params, optimizer, meta, average)
    return params


def test_export_keeps_the_averaged_weights_and_the_provenance(tmp_path):
    params = tiny_run(tmp_path / "checkpoint.npz")
    export_for_inference(tmp_path, tmp_path / "exported.npz", {"command": "test"})
    weights, optimizer_state, meta = load_checkpoint(tmp_path / "exported.npz")
    assert optimizer_state == {} and meta["provenance"] == {"command": "test"} and meta["iteration"] == 5
    for name, value in params.items():
        np.testing.assert_array_equal(weights[name], (value + 1).astype(np.float32))


def test_export_of_several_runs_is_their_ensemble(tmp_path):
    for seed, iteration in ((0, 5), (1, 7)):
        tiny_run(tmp_path / f"run{seed}" / "checkpoint.npz", seed=seed, iteration=iteration)
    export_for_inference([tmp_path / "run0", tmp_path / "run1"], tmp_path / "ensemble.npz", {"command": "test"})
    ensemble, meta = load_trained(tmp_path / "ensemble.npz", np)
    assert isinstance(ensemble, Ensemble) and meta["config"]["members"] == 2
    assert meta["member_runs"] == [{"seed": 0, "iteration": 5}, {"seed": 1, "iteration": 7}]
    assert trained_for(meta) == "iterations 5 and 7" and trained_for({"iteration": 5}) == "iteration 5"
    x = corrupt_held_out(load_embedded().images[:4], DEFAULTS)
    members = [load_trained(tmp_path / f"run{seed}", np)[0].forward(x) for seed in (0, 1)]
    assert not np.allclose(members[0], members[1])  # two different networks
    np.testing.assert_allclose(ensemble.forward(x), (members[0] + members[1]) / 2, rtol=1e-6)


def test_export_refuses_an_ensemble_of_unlike_runs(tmp_path):
    tiny_run(tmp_path / "run0" / "checkpoint.npz")
    tiny_run(tmp_path / "run1" / "checkpoint.npz", seed=1, hidden=6)
    with pytest.raises(CheckpointError, match="run1/checkpoint.npz: differs from .* in hidden; the members"):
        export_for_inference([tmp_path / "run0", tmp_path / "run1"], tmp_path / "ensemble.npz", {})
    assert not (tmp_path / "ensemble.npz").exists()


def test_evaluate_asks_for_the_data_of_a_run_made_elsewhere(tmp_path):
    tiny_run(tmp_path / "checkpoint.npz", data=str(tmp_path / "not-here"))
    with pytest.raises(UsageError, match="not a folder here: give the folder of those MNIST files with --data"):
        evaluate_checkpoint(tmp_path / "checkpoint.npz", device="cpu", progress=False)
