"""Busy processes beside a measurement, as a user's other programs are (`--contend K` of
bench.step and bench.train_speed).

Each contender is a separate single-threaded process that spins a pure-Python loop until
the block ends: it takes one core's worth of time slices whenever the scheduler lets it,
never sleeps, and touches little memory, so what it measures is how the timed code
shares the cores, not how it shares the caches.
"""

import contextlib
import multiprocessing

SPIN_CHUNK = 200_000  # additions between looks at the stop flag: a few milliseconds


def _spin(stop):
    total = 0
    while not stop.is_set():
        for i in range(SPIN_CHUNK):
            total += i


@contextlib.contextmanager
def busy_processes(count):
    """Run `count` spinning processes while the block runs (none for 0); they are stopped,
    and waited for, when it ends, also on an exception or Ctrl-C."""
    if count <= 0:
        yield
        return
    context = multiprocessing.get_context("spawn")  # no copy of the parent's threads or arrays
    stop = context.Event()
    workers = [context.Process(target=_spin, args=(stop,), daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join()
