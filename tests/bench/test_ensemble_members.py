"""`python -m bench.ensemble_members`: its mean of runs is the shipped Ensemble's completion,
and its projection is exact where it can be checked (as many members as were measured)."""

import numpy as np
import pytest

from bench.ensemble_members import lower_half_errors, main, projected_rmse, rmse_of_mean
from mnist_half.config import saved_config
from mnist_half.corruption import corrupt_held_out, lower_rows
from mnist_half.models import complete_images
from mnist_half.runs import export_for_inference, load_split, load_trained
from tests.mnist_half.test_pretrained import tiny_run

DIGITS = 40
BOUND = 1e-12  # float64 sums of the same products in another order


@pytest.fixture
def runs(tmp_path):
    paths = [tmp_path / f"run{seed}" for seed in range(3)]
    for seed, path in enumerate(paths):
        tiny_run(path / "checkpoint.npz", seed=seed)
    return paths


def test_the_mean_of_runs_is_their_exported_ensemble(runs, tmp_path):
    errors = lower_half_errors(runs[:2], limit=DIGITS)
    export_for_inference(runs[:2], tmp_path / "ensemble.npz", {})
    ensemble, meta = load_trained(tmp_path / "ensemble.npz", np)
    clean = load_split(saved_config(meta), progress=False)[1].images[:DIGITS]
    completed = complete_images(ensemble, corrupt_held_out(clean, saved_config(meta)), np, DIGITS, 1, False)
    lower = lower_rows(clean)
    expected = np.sqrt(np.mean((completed[:, lower].astype(np.float64) - clean[:, lower]) ** 2))
    assert rmse_of_mean(errors) == pytest.approx(expected, rel=1e-6)  # the ensemble's weights are float32


def test_the_projection_gives_the_measured_mean_for_as_many_members(runs):
    errors = lower_half_errors(runs, limit=DIGITS)
    assert projected_rmse(errors, 3) == pytest.approx(rmse_of_mean(errors), rel=BOUND)
    assert projected_rmse(errors[:2], 2) == pytest.approx(rmse_of_mean(errors[:2]), rel=BOUND)
    assert projected_rmse(errors, 1) == pytest.approx(np.sqrt(np.mean([np.mean(e ** 2) for e in errors])), rel=BOUND)
    limit = projected_rmse(errors, np.inf)
    assert limit < projected_rmse(errors, 16) < projected_rmse(errors, 4) < projected_rmse(errors, 3)


def test_the_command_reports_every_subset_and_the_projection(runs, capsys):
    main([str(path) for path in runs] + ["--limit", str(DIGITS)])
    out = capsys.readouterr().out
    assert out.count("alone") == 3 and out.count("error correlation") == 3 and out.count("mean of") == 4
    assert "projected for members like these: 4: " in out and "the limit: " in out


def test_runs_of_other_held_out_digits_are_refused(runs, tmp_path):
    tiny_run(tmp_path / "other" / "checkpoint.npz", seed=5, split_seed=3)
    with pytest.raises(ValueError, match="other: differs from .* in split_seed: other held-out digits"):
        lower_half_errors([runs[0], tmp_path / "other"], limit=DIGITS)
