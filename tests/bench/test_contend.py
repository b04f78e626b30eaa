"""bench.contend and `--contend K` of bench.step: busy processes beside a measurement, and
the slowdowns reported from it."""

import multiprocessing
import time

from bench.contend import busy_processes


def test_busy_processes_run_during_the_block_and_are_gone_after():
    with busy_processes(2):
        workers = multiprocessing.active_children()
        assert len(workers) == 2 and all(worker.is_alive() for worker in workers)
    assert multiprocessing.active_children() == []
    with busy_processes(0):
        assert multiprocessing.active_children() == []


def test_busy_processes_stop_on_an_exception():
    try:
        with busy_processes(1):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []


def test_bench_step_contended_measurement_reports_slowdowns():
    import bench.step as step

    result = step.measure(iters=2, warmup=1, hidden=8, layers=1, batch_size=4, gap_s=0.0, contend=1)
    assert result["contend"] == 1
    for key in ("median_s_per_iter", "contended_median_s_per_iter"):
        assert result[key] > 0
    assert result["slowdown"] == result["contended_median_s_per_iter"] / result["median_s_per_iter"]
    assert result["threads_chosen"] in (1, result["threads"])
    assert result["contended_threads_chosen"] in (1, result["threads"])
    assert "slowdown" in step.report(result)


def test_train_speed_times_the_training_loop_idle_and_contended(no_mnist_env, monkeypatch):
    import bench.train_speed as train_speed
    from mnist_half.config import PRESETS

    monkeypatch.setenv("MNIST_HALF_OFFLINE", "1")  # the embedded digits
    result = train_speed.measure("cpu", "cnn-cnn", "quick", members=2, iters=2, warmup=1, contend=1)
    iters = PRESETS["quick"]["iters"]
    assert result["members"] == 2 and result["run_iters"] == iters
    assert result["s_per_iter"] > 0 and result["contended_s_per_iter"] > 0
    assert result["slowdown"] == result["contended_s_per_iter"] / result["s_per_iter"]
    assert result["run_minutes"] == result["s_per_iter"] * iters / 60
    assert "slowdown" in train_speed.report(result) and "2 members" in train_speed.report(result)


def test_train_speed_estimates_the_run_the_command_would_make_on_many_digits(no_mnist_env, monkeypatch):
    """On many training digits the quick preset trains fewer iterations on a CPU; the
    estimate of the whole run follows (FEW_DIGITS moved so the embedded digits count as many)."""
    import bench.train_speed as train_speed
    from mnist_half import config

    monkeypatch.setenv("MNIST_HALF_OFFLINE", "1")
    monkeypatch.setattr(config, "FEW_DIGITS", 2)
    result = train_speed.measure("cpu", "cnn-cnn", "quick", members=1, iters=1, warmup=1)
    assert result["run_iters"] == config.QUICK_ON_MANY_DIGITS["iters"] != config.PRESETS["quick"]["iters"]
