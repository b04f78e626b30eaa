"""The quick preset fits a 2-core CPU (one model of 2,500 iterations) and, on a GPU, is the
three-member ensemble of 4,000 iterations; flags given explicitly always win."""

import pytest

from mnist_half import config
from mnist_half.config import PRESETS, QUICK_ON_GPU, make_config


@pytest.fixture
def gpu_present(monkeypatch):
    def set_present(present):
        monkeypatch.setattr(config, "gpu_unavailable_reason", lambda: None if present else "no GPU in this test")

    return set_present


@pytest.mark.parametrize("device, present, on_gpu", [("cpu", True, False), ("gpu", False, True), ("auto", True, True),
                                                     ("auto", False, False)])
def test_quick_preset_by_device(gpu_present, device, present, on_gpu):
    gpu_present(present)
    made = make_config("quick", {"device": device})
    expected = {**PRESETS["quick"], **(QUICK_ON_GPU if on_gpu else {})}
    assert (made["iters"], made["members"]) == (expected["iters"], expected["members"])
    assert (made["iters"], made["members"]) == ((4000, 3) if on_gpu else (2500, 1))


def test_explicit_flags_win_on_the_gpu(gpu_present):
    gpu_present(True)
    made = make_config("quick", {"device": "gpu", "members": 1, "iters": None})
    assert made["members"] == 1 and made["iters"] == QUICK_ON_GPU["iters"]


def test_the_paper_preset_does_not_depend_on_the_device(gpu_present):
    gpu_present(True)
    assert make_config("paper", {"device": "gpu"})["members"] == make_config("paper", {"device": "cpu"})["members"] == 1
