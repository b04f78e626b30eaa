"""The quick preset fits a 2-core CPU (one model of 2,500 iterations) and, on a GPU, is the
three-member ensemble of 4,000 iterations; on 10,000 training digits or more it trains with
plain targets, dropout 0.1 and (on a CPU) 2,300 iterations; flags given always win."""

import pytest

from mnist_half import config
from mnist_half.cli import UsageError
from mnist_half.config import (
    DEFAULTS,
    FEW_DIGITS,
    PRESETS,
    QUICK_ON_GPU,
    QUICK_ON_MANY_DIGITS,
    make_config,
    settle_for_data,
)


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


@pytest.mark.parametrize("train_digits, many", [(3_750, False), (FEW_DIGITS - 1, False), (FEW_DIGITS, True),
                                                (45_000, True)])
def test_the_quick_preset_is_settled_by_the_training_set_size(gpu_present, train_digits, many):
    gpu_present(False)
    settled = settle_for_data(make_config("quick", {"device": "cpu"}), train_digits)
    expected = {**PRESETS["quick"], "dropout": DEFAULTS["dropout"], **(QUICK_ON_MANY_DIGITS if many else {})}
    assert {key: settled[key] for key in expected} == expected
    assert settled["on_many_digits"] == {}  # what a checkpoint stores: nothing left to settle
    assert settle_for_data(settled, 45_000) == settled


def test_on_a_gpu_many_digits_keep_the_ensembles_length(gpu_present):
    gpu_present(True)
    settled = settle_for_data(make_config("quick", {"device": "gpu"}), 45_000)
    assert (settled["iters"], settled["members"]) == (QUICK_ON_GPU["iters"], QUICK_ON_GPU["members"])
    assert (settled["target_blend"], settled["dropout"]) == (0.0, QUICK_ON_MANY_DIGITS["dropout"])


@pytest.mark.parametrize("given", [{"target_blend": 0.5}, {"dropout": 0.3}, {"iters": 100}])
def test_a_given_flag_is_kept_whatever_the_training_set_size(gpu_present, given):
    gpu_present(False)
    made = make_config("quick", {"device": "cpu", **given})
    for train_digits in (3_750, 45_000):
        settled = settle_for_data(made, train_digits)
        assert {key: settled[key] for key in given} == given


def test_the_paper_preset_does_not_depend_on_the_training_set_size():
    made = make_config("paper", {"device": "cpu"})
    assert settle_for_data(made, 3_750) == settle_for_data(made, 45_000)


@pytest.mark.parametrize("flag, value", [("target_blend", 1.5), ("dropout", 1.0), ("dropout", -0.1)])
def test_a_given_rate_outside_its_range_is_refused(flag, value):
    with pytest.raises(UsageError, match="--" + flag.replace("_", "-")):
        make_config("quick", {"device": "cpu", flag: value})
