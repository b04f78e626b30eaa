"""bench/: the PyTorch twins compute exactly what tinynet's models compute (so the timing
is apples to apples), and `python -m bench.step` runs and reports what it promises."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.step import CLIP, L2, LR, make_batch
from mnist_half.models import build_model
from mnist_half.training import training_update
from tinynet.backend import gpu_unavailable_reason
from tinynet.optim import Adam

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAMES = ("cnn-lstm", "cnn-cnn")
# float64, the same maths summed in another order: only rounding differs. The error is
# normwise (worst |a - b| over the tensor's largest |b|): an elementwise one blows up on
# the elements that cancel to nearly 0.
BOUND = 1e-12
HIDDEN, LAYERS, N = 6, 2, 3


def twins(name, dropout=0.0):
    """(tinynet model, PyTorch twin with the same weights), float64, without dropout."""
    torch_models = pytest.importorskip("bench.torch_models", reason="PyTorch is not installed")
    config = {"hidden": HIDDEN, "layers": LAYERS, "dropout": dropout}
    model = build_model(name, np.random.default_rng(7), config, 0.2, dtype=np.float64, input_grad=True)
    twin = torch_models.build_torch_twin(name, HIDDEN, LAYERS, dropout).double()
    torch_models.load_tinynet_params(twin, model.named_params())
    return model, twin, torch_models


def batch(rng):
    """Inputs in (0.05, 0.95) and targets: no value sits where a ReLU or max-pool could tie."""
    x, y = rng.uniform(0.05, 0.95, size=(2, N, 28, 28))
    return x, y


def normwise_error(actual, expected):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape and np.isfinite(actual).all()
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def worst_errors(expected, actual):
    assert set(expected) == set(actual)
    return {name: normwise_error(actual[name], expected[name]) for name in expected}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torch_twin_has_the_same_parameters(name):
    model, twin, torch_models = twins(name)
    layout = twin.tinynet_layout()
    trainable = sum(p.numel() for p in torch_models.trainable(twin))
    assert trainable == sum(p.size for p in model.named_params().values())
    # every trainable element appears in exactly one tinynet array, with tinynet's shape
    assert sum(view(p).numel() for p, view in layout.values()) == trainable
    for key, value in model.named_params().items():
        param, view = layout[key]
        assert tuple(view(param).shape) == value.shape, key
    weights = {id(p) for p in torch_models.l2_weights(twin)}
    assert weights == {id(layout[key][0]) for key in model.named_weights()}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_torch_twin_matches_forward_and_gradients(name, rng):
    """One training forward, then a backward from the same random upstream gradient: the
    outputs, the input gradients and every parameter's gradient agree."""
    model, twin, torch_models = twins(name)
    torch = torch_models.torch
    x, _ = batch(rng)
    y = model.forward(x, train=True)
    dy = rng.standard_normal(y.shape)
    dx = model.backward(dy)
    x_torch = torch.from_numpy(x).requires_grad_()
    y_torch = twin(x_torch)
    y_torch.backward(torch.from_numpy(dy))
    ours = {"y": y, "dx": dx, **model.named_grads()}
    theirs = {"y": y_torch.detach().numpy(), "dx": x_torch.grad.numpy(), **torch_models.tinynet_grads(twin)}
    errors = worst_errors(theirs, ours)
    assert max(errors.values()) < BOUND, errors


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_training_steps_match_torch(name, rng):
    """Loss, L2, clipping and Adam too: after two steps both hold the same weights."""
    model, twin, torch_models = twins(name)
    torch = torch_models.torch
    x, y = batch(rng)
    optimizer = Adam(lr=LR)
    torch_optimizer = torch.optim.Adam(torch_models.trainable(twin), lr=LR)
    for _ in range(2):
        optimizer.begin_step()
        loss = training_update(model, optimizer, x, y, L2, CLIP)
        torch_loss = torch_models.torch_step(twin, torch_optimizer, torch.from_numpy(x), torch.from_numpy(y), L2, CLIP)
        assert normwise_error(loss, torch_loss.numpy()) < BOUND
    with torch.no_grad():
        torch_params = {key: view(p).numpy() for key, (p, view) in twin.tinynet_layout().items()}
    errors = worst_errors(model.named_params(), torch_params)
    assert max(errors.values()) < BOUND, errors


def test_make_batch_is_corrupted_like_training_float32():
    noisy, clean = make_batch(4)
    assert noisy.dtype == clean.dtype == np.float32 and noisy.shape == clean.shape == (4, 28, 28)
    assert set(np.unique(noisy[:, 14:])) <= {0.0, 1.0}  # blanked lower half, salt and pepper only


def run_bench(*args):
    return subprocess.run([sys.executable, "-m", "bench.step", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_bench_step_json_last_line():
    done = run_bench("--iters", "2", "--warmup", "1", "--hidden", "16", "--layers", "2", "--batch-size", "8",
                     "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("median_s_per_iter", "min_s_per_iter", "max_s_per_iter", "images_per_s", "peak_mem_mb"):
        assert result[key] > 0, key
    assert result["min_s_per_iter"] <= result["median_s_per_iter"] <= result["max_s_per_iter"]


def test_bench_step_times_every_iteration_in_blocks(monkeypatch):
    """--block 2 with 3 iterations: turns of 2 and 1, three timings, the gap only before a turn."""
    import bench.step as step

    gaps = []

    def recording_timed(run, sync, gap_s=0.0):
        gaps.append(gap_s)
        return timed(run, sync, 0.0)

    timed = step.timed
    monkeypatch.setattr(step, "timed", recording_timed)
    result = step.measure(iters=3, warmup=1, hidden=8, layers=1, batch_size=4, gap_s=0.01, block=2)
    # after the warm-up calls: the training turns (2 + 1), then the 3 inference passes
    assert gaps[-6:] == [0.01, 0.0, 0.01, 0.01, 0.01, 0.01]
    assert result["block"] == 2
    assert 0 < result["min_s_per_iter"] <= result["median_s_per_iter"] <= result["max_s_per_iter"]
    done = run_bench("--iters", "2", "--block", "0")
    assert done.returncode == 2 and "--block must be positive" in done.stderr


@pytest.mark.skipif(gpu_unavailable_reason() is None, reason="a GPU is present: the no-GPU error cannot be provoked")
def test_bench_step_gpu_without_gpu_exits_2():
    done = run_bench("--device", "gpu", "--iters", "1")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device gpu") and "--device cpu" in lines[0]


@pytest.mark.skipif(gpu_unavailable_reason() is None, reason="a GPU is present: the no-GPU error cannot be provoked")
def test_graph_parts_without_gpu_exits_2():
    done = subprocess.run([sys.executable, "-m", "bench.graph_parts"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: --device gpu")


def test_scaling_table_rows_fill_the_header():
    from bench.scaling import table_header, table_row

    result = {"median_s_per_iter": 0.3, "min_s_per_iter": 0.2, "max_s_per_iter": 0.4, "batch_size": 100,
              "torch_median_s_per_iter": 0.4, "torch_min_s_per_iter": 0.3, "torch_max_s_per_iter": 0.5,
              "ratio": 0.75, "loadavg_1m": [1.0, 1.5]}
    header = table_header("batch", compare_torch=True).splitlines()
    row = table_row(100, result)
    assert header[0].count("|") == header[1].count("|") == row.count("|") == 7
    assert "| 100 | 0.3000 (0.2000-0.4000) | 3.000 | 0.4000 (0.3000-0.5000) | 0.75 |" in row


def test_negligible_bench_puts_dead_channels_where_the_flush_would_act(capsys):
    """bench.negligible: the dead channels at 0, or between 2^-130 and 2^-103 (below the
    flush's bound), the live channels untouched; it runs and reports."""
    from bench import negligible
    from tinynet.negligible import negligible_below

    w = np.random.default_rng(0).standard_normal((6, 2, 3, 3)).astype(np.float32)
    zero = negligible.dead_channel_weights(w, 4, np.random.default_rng(1), "zero")
    tiny = negligible.dead_channel_weights(w, 4, np.random.default_rng(1), "tiny")
    assert (zero[:4] == 0).all() and np.array_equal(zero[4:], w[4:]) and np.array_equal(tiny[4:], w[4:])
    magnitudes = np.abs(tiny[:4])
    assert magnitudes.min() >= 2.0**-130 and magnitudes.max() <= 2.0**-103 < negligible_below(np.float32)
    negligible.main(["--iters", "1", "--batch-size", "2", "--threads", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["dead", "dead", "all", "slowdown"]
