"""The quick preset fits a 2-core CPU (one model of 2,500 iterations) and, on a GPU, is the
three-member ensemble of 4,000 iterations; its neighbour blend serves few training digits
only; flags given explicitly always win."""

import pytest

from mnist_half import config
from mnist_half.cli import UsageError
from mnist_half.config import FEW_DIGITS, PRESETS, QUICK_BLEND, QUICK_ON_GPU, make_config, settle_for_data


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


@pytest.mark.parametrize("train_digits, blend", [(3_750, QUICK_BLEND), (FEW_DIGITS - 1, QUICK_BLEND),
                                                 (FEW_DIGITS, 0.0), (45_000, 0.0)])
def test_the_quick_blend_is_settled_by_the_training_set_size(train_digits, blend):
    made = make_config("quick", {"device": "cpu"})
    assert made["target_blend"] == "auto"
    assert settle_for_data(made, train_digits)["target_blend"] == blend


@pytest.mark.parametrize("given", [0.0, 0.5])
def test_a_given_blend_is_kept_whatever_the_training_set_size(given):
    made = make_config("quick", {"device": "cpu", "target_blend": given})
    assert settle_for_data(made, 3_750)["target_blend"] == settle_for_data(made, 45_000)["target_blend"] == given


def test_a_given_blend_outside_0_1_is_still_refused():
    with pytest.raises(UsageError, match="--target-blend"):
        make_config("quick", {"device": "cpu", "target_blend": 1.5})
