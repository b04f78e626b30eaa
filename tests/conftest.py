"""Shared fixtures: `xp` runs a test on NumPy and, where usable, on CuPy."""

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
