"""tinynet.threads: the usable cores (affinity, cgroup quota) and the choice between all
of them and one thread while a loop runs."""

import numba
import pytest

from tinynet import threads


@pytest.mark.parametrize("cpu_max, expected", [("max 100000", None), ("150000 100000", 1.5), ("50000 100000", 0.5)])
def test_cgroup_v2_quota(tmp_path, monkeypatch, cpu_max, expected):
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    monkeypatch.setattr(threads, "CGROUP_V2_CPU_MAX", tmp_path / "cpu.max")
    assert threads.cgroup_cpu_limit() == expected


def test_cgroup_v1_quota_and_none(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "CGROUP_V2_CPU_MAX", tmp_path / "absent")
    (tmp_path / "quota").write_text("250000\n")
    (tmp_path / "period").write_text("100000\n")
    monkeypatch.setattr(threads, "CGROUP_V1_QUOTA", tmp_path / "quota")
    monkeypatch.setattr(threads, "CGROUP_V1_PERIOD", tmp_path / "period")
    assert threads.cgroup_cpu_limit() == 2.5
    (tmp_path / "quota").write_text("-1\n")  # unlimited
    assert threads.cgroup_cpu_limit() is None


@pytest.mark.parametrize("affinity, limit, expected", [(8, None, 8), (8, 2.5, 2), (8, 0.5, 1), (2, 16.0, 2)])
def test_usable_cores_is_affinity_capped_by_the_quota(monkeypatch, affinity, limit, expected):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: limit)
    assert threads.usable_cores() == expected


def run_chooser(monkeypatch, seconds_at, steps, **kwargs):
    """The thread count of every step of a ThreadChooser whose steps take seconds_at(count, step)."""
    monkeypatch.setattr(threads, "set_threads", lambda count: count)
    chooser = threads.ThreadChooser(cores=4, **kwargs)
    counts = []
    for step in range(steps):
        counts.append(chooser.threads)
        chooser.step_done(seconds_at(chooser.threads, step))
    return counts


def test_chooser_keeps_all_cores_on_an_idle_machine(monkeypatch):
    counts = run_chooser(monkeypatch, lambda count, step: 1.0 / count, 40, trial_steps=3, recheck_every=100)
    assert counts[:8] == [4] * 4 + [1] * 4  # one trial each (3 timed steps after a warm-up step)
    assert counts[8:] == [4] * 32


def test_chooser_falls_back_to_one_thread_when_cores_are_busy(monkeypatch):
    counts = run_chooser(monkeypatch, lambda count, step: {4: 3.0, 1: 1.0}[count], 40, trial_steps=3,
                         recheck_every=100)
    assert counts[8:] == [1] * 32


def test_chooser_rechecks_and_follows_the_machine(monkeypatch):
    def seconds_at(count, step):  # busy until step 50, idle after
        return {4: 3.0, 1: 1.0}[count] if step < 50 else 1.0 / count

    counts = run_chooser(monkeypatch, seconds_at, 120, trial_steps=3, recheck_every=20)
    # Each recheck times 4 steps at either count, then 20 steps at the faster.
    assert counts[10:50].count(1) >= 30  # busy: one thread, but for the rechecks
    assert counts[-40:].count(4) >= 30  # idle again: all cores


def test_chooser_notices_a_program_starting_within_a_few_steps(monkeypatch):
    def seconds_at(count, step):  # idle until step 30, then another program takes cores
        return 1.0 / count if step < 30 else {4: 3.0, 1: 1.0}[count]

    counts = run_chooser(monkeypatch, seconds_at, 60, trial_steps=3, recheck_every=1000)
    assert counts[8:30] == [4] * 22
    assert counts[-15:] == [1] * 15  # switched long before the periodic recheck


def test_one_usable_core_never_switches(monkeypatch):
    monkeypatch.setattr(threads, "set_threads", lambda count: count)
    chooser = threads.ThreadChooser(cores=1, trial_steps=2, recheck_every=3)
    for _ in range(10):
        chooser.step_done(1.0)
        assert chooser.threads == 1


def test_set_threads_reaches_numba():
    before = numba.get_num_threads()
    try:
        assert threads.set_threads(1) == 1 and numba.get_num_threads() == 1
        assert threads.set_threads(10_000) == numba.config.NUMBA_NUM_THREADS
    finally:
        numba.set_num_threads(before)
