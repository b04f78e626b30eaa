"""bench/gpu_checks.sh, the GPU checks of a CUDA machine: it parses, its checks fit in 9
minutes, and (with a stand-in `python` and `nvidia-smi`, so no GPU work runs) it writes one
summary line per check and goes on after a failed one. bench.loss_falls: its verdict."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.loss_falls import loss_falls

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_checks.sh"
CHECKS = ("machine", "gpu_tests", "step_lstm", "step_cnn", "graph_parts", "train", "loss_falls")
LIMIT_S = 540  # 9 minutes of one GPU


def timeouts():
    """{check: seconds} of the script's `run NAME SECONDS ...` lines, in their order."""
    return {name: int(seconds) for name, seconds in re.findall(r"^run (\w+) (\d+) ", SCRIPT.read_text(), re.M)}


def test_the_script_parses():
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_its_checks_fit_in_nine_minutes():
    assert tuple(timeouts()) == CHECKS
    assert sum(timeouts().values()) <= LIMIT_S


def stand_ins(folder):
    """A `python` that prints its arguments and fails the graph_parts check (exit 3), and an
    `nvidia-smi` that names a GPU; returns the environment that puts them first."""
    folder.mkdir()
    python = folder / "python"
    python.write_text('#!/bin/sh\necho "stand-in python $*"\ncase "$*" in *graph_parts*) exit 3;; esac\n')
    (folder / "nvidia-smi").write_text('#!/bin/sh\necho "Stand-in GPU, 1.0, 1 MiB"\n')
    for path in folder.iterdir():
        path.chmod(0o755)
    return {**os.environ, "PYTHON": str(python), "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_one_summary_line_per_check_and_it_goes_on_after_a_failure(tmp_path):
    env = stand_ins(tmp_path / "bin")
    out = tmp_path / "checks"
    done = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr  # graph_parts failed
    lines = (out / "summary.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == list(CHECKS)
    for line in lines:
        name, word, status, seconds = line.split()
        assert word == "exit" and status == ("3" if name == "graph_parts" else "0") and re.fullmatch(r"\d+s", seconds)
        assert (out / f"{name}.log").exists()
    assert "stand-in python -m bench.step --device gpu --model cnn-lstm --compare-torch" in (
        out / "step_lstm.log").read_text()
    assert f"--out {out / 'train_run'}" in (out / "train.log").read_text()
    assert "Stand-in GPU" in (out / "machine.log").read_text()

    chosen = subprocess.run(["bash", str(SCRIPT), str(out), "step_lstm", "loss_falls"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert chosen.returncode == 0, chosen.stdout + chosen.stderr
    assert [line.split()[0] for line in (out / "summary.txt").read_text().splitlines()] == ["step_lstm", "loss_falls"]


def test_usage_without_arguments():
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stderr.startswith("usage: bash bench/gpu_checks.sh OUT")


def write_log(path, train_losses):
    rows = ["iteration,train_loss,test_loss,elapsed_s"]
    rows += [f"{50 * (k + 1)},{loss},,{k:.1f}" for k, loss in enumerate(train_losses)]
    rows.insert(3, "100,,0.3,2.0")  # a test-loss row among them
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("losses, passed", [((0.30, 0.28, 0.25), True), ((0.30, 0.31), False),
                                            ((0.30,), False), ((0.30, float("nan"), 0.2), False)])
def test_loss_falls_compares_the_last_training_loss_with_the_first(tmp_path, losses, passed):
    verdict, line = loss_falls(write_log(tmp_path / "log.csv", losses))
    assert verdict is passed and line.startswith("PASS" if passed else "FAIL")
