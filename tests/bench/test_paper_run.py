"""bench/paper_run.sh: the paper's run in pieces; each piece stops as Ctrl-C does and the
next one continues the same run (--resume)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_half.checkpoint import load_checkpoint
from mnist_half.data import IDX_PAIRS, write_idx

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "paper_run.sh"


def piece(out, data, seconds):
    env = {**os.environ, "PYTHON": sys.executable, "MNIST_HALF_OFFLINE": "1", "NUMBA_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), str(out), str(data), str(seconds), "--device", "cpu", "--hidden", "8",
                           "--layers", "1", "--batch-size", "8", "--checkpoint-every", "5"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_pieces_continue_one_run(tmp_path, rng):
    data = tmp_path / "mnist"
    data.mkdir()
    images_stem, labels_stem = IDX_PAIRS[0]  # the training pair alone, as a user may have it
    write_idx(data / images_stem, rng.integers(0, 256, (64, 28, 28), dtype=np.uint8))
    write_idx(data / labels_stem, rng.integers(0, 10, 64, dtype=np.uint8))
    out = tmp_path / "paper"
    first = piece(out, data, 15)
    assert first.returncode == 124, first.stderr[-2000:]
    assert "piece stopped at iteration" in first.stdout and "run the same command again" in first.stdout
    reached = load_checkpoint(out / "checkpoint.npz")[2]["iteration"]
    assert reached > 0
    second = piece(out, data, 15)
    assert second.returncode == 124, second.stderr[-2000:]
    assert load_checkpoint(out / "checkpoint.npz")[2]["iteration"] > reached
    assert "Traceback" not in first.stderr + second.stderr


def test_usage_without_arguments():
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stderr.startswith("usage: bash bench/paper_run.sh OUT DATA_DIR")
