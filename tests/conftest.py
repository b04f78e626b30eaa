"""Shared fixtures: `xp` runs a test on NumPy and, where usable, on CuPy; every test runs with
the signals of a foreground terminal."""

import signal

import numpy as np
import pytest

from tinynet.backend import gpu_unavailable_reason

GPU_REASON = gpu_unavailable_reason()


def _xp_params():
    gpu = pytest.param(
        "gpu",
        marks=[pytest.mark.gpu,
               pytest.mark.skipif(GPU_REASON is not None, reason=f"GPU variant skipped: {GPU_REASON}")],
    )
    return ["cpu", gpu]


@pytest.fixture(params=_xp_params())
def xp(request):
    """The array module under test: numpy, or cupy for the GPU variant."""
    if request.param == "cpu":
        return np
    import cupy

    return cupy


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def no_mnist_env(monkeypatch):
    """Clear the MNIST_HALF_* variables a user may have set, so a test picks its data sources itself."""
    for name in ("MNIST_HALF_DATA", "MNIST_HALF_CACHE", "MNIST_HALF_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def foreground_signals():
    """Every test runs with Ctrl-C and SIGTERM as in a foreground terminal (Python's
    KeyboardInterrupt, the default action), whatever the runner was started with: a shell
    starts a background job with SIGINT ignored, and a child process inherits that."""
    signals = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {signum: signal.signal(signum, handler) for signum, handler in signals.items()}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)
