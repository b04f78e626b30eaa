"""How many threads tinynet's CPU kernels run on, and the choice of that number while a
training loop runs.

Two facts decide it:
- The cores a process may really use are fewer than `os.cpu_count()` wherever its CPU
  affinity is restricted (taskset, a batch scheduler) or a cgroup quota caps it (a
  container with `--cpus 2` on a 64-core host): `usable_cores()` reads both.
- The kernels split each product, convolution and image-plane loop over the threads and
  wait for all of them at its end: one training step crosses hundreds of such barriers.
  When another program runs beside the training, one thread is taken off its core for a
  whole time slice (milliseconds) while the others wait at the barrier, and a step can take
  many times longer than on one thread alone. `ThreadChooser` therefore times the step
  with every core and with one thread, now and then, and keeps whichever is faster, so a
  run follows the machine as other programs come and go.

NumPy's BLAS (OpenBLAS or another, through threadpoolctl when it is installed) follows the
same count, so its workers and Numba's are never both spinning on the same cores.
"""

import math
import os
import statistics
from pathlib import Path

CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def cgroup_cpu_limit():
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), or None when unlimited
    or unknown (no cgroup files, another OS)."""
    try:
        quota, period = CGROUP_V2_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(CGROUP_V1_QUOTA.read_text())
        period = int(CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cores():
    """The cores this process may run on: its CPU affinity, capped by the cgroup quota
    (rounded down, at least 1: threads beyond the quota are throttled in turn)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, math.floor(limit)))
    return max(1, cores)


def set_threads(count):
    """Run Numba's parallel kernels, and NumPy's BLAS where threadpoolctl can reach it, on
    `count` threads (at most the Numba pool's size) from now on; returns the count set."""
    import numba

    count = max(1, min(int(count), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(count)
    _limit_blas(count)
    return count


def _limit_blas(count):
    try:
        import threadpoolctl
    except ImportError:
        return
    threadpoolctl.threadpool_limits(count, user_api="blas")


class ThreadChooser:
    """Picks, as a loop runs, the faster of `usable_cores()` threads and one thread.

    Call `step_done(seconds)` after each timed step; it may change the thread count for the
    next step. A trial times each count for `trial_steps` steps (the first step after a
    switch is not counted: caches and thread pools warm up); then the faster count serves.
    A new trial starts when the serving count's recent steps (the median of the last
    `trial_steps`) take `slower` times its trial's median, so a program starting beside the
    run is noticed within a few steps, and every `recheck_every` steps in any case, so a run
    that fell back to one thread gets its cores back when the machine frees up. With one
    usable core there is nothing to choose and it never switches.
    """

    def __init__(self, cores=None, trial_steps=5, recheck_every=500, slower=1.5):
        self.choices = sorted({cores or usable_cores(), 1}, reverse=True)
        self.trial_steps, self.recheck_every, self.slower = trial_steps, recheck_every, slower
        self.median = {}  # threads -> the median step time of its latest trial
        self.samples = []  # the current trial's step times, or the serving count's recent ones
        self.threads = set_threads(self.choices[0])
        self.steps_since_trial = 0
        self.trying = len(self.choices) > 1  # the first count's trial starts at once

    def step_done(self, seconds):
        """Record one step's seconds at the current count; switch counts when a trial ends."""
        if len(self.choices) == 1:
            return
        self.samples.append(seconds)
        if not self.trying:
            self.steps_since_trial += 1
            recent = self.samples[-self.trial_steps:]
            slowed = (len(recent) == self.trial_steps
                      and statistics.median(recent) > self.slower * self.median[self.threads])
            if slowed or self.steps_since_trial >= self.recheck_every:
                self.median.clear()  # re-time both: the machine has changed, or may have
                self._start_trial(next(count for count in self.choices if count != self.threads))
            return
        if len(self.samples) <= self.trial_steps:  # samples[0] is the step right after a switch
            return
        self.median[self.threads] = statistics.median(self.samples[1:])
        untried = [count for count in self.choices if count not in self.median]
        if untried:
            self._start_trial(untried[0])
            return
        best = min(self.choices, key=self.median.__getitem__)
        self.trying, self.steps_since_trial, self.samples = False, 0, []
        if best != self.threads:
            self.threads = set_threads(best)

    def _start_trial(self, count):
        self.trying, self.samples = True, []
        self.threads = set_threads(count)
