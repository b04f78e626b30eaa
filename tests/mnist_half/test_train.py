"""Training: the loss falls, a resumed run equals an uninterrupted one, bad input is exit 2."""

import csv
import os
import signal

import numpy as np
import pytest

from mnist_half import training
from mnist_half.checkpoint import load_checkpoint
from mnist_half.config import DEFAULTS, PRESETS, make_config
from mnist_half.data import load_mnist
from mnist_half.runs import load_split, load_trained, resolve_out_dir
from mnist_half.training import Trainer, few_digits_warning, learning_rate, train

TINY = {"hidden": 8, "layers": 2, "batch_size": 8, "eval_digits": 16, "eval_every": 2,
        "checkpoint_every": 2, "warmup": 2, "members": 1}


@pytest.fixture
def offline(no_mnist_env, monkeypatch, tmp_path):
    """The embedded digits, never the network or a user's cache."""
    monkeypatch.setenv("MNIST_HALF_OFFLINE", "1")
    monkeypatch.setenv("MNIST_HALF_CACHE", str(tmp_path / "cache"))


def tiny_config(**overrides):
    return {**DEFAULTS, **PRESETS["quick"], **TINY, "device": "cpu", **overrides}


@pytest.fixture(scope="module")
def digits():
    return load_mnist(download=False, cache_dir="/nonexistent-cache-for-tests")


@pytest.mark.parametrize("model, lr", [("cnn-lstm", 1e-2), ("cnn-cnn", 3e-3)])
def test_a_few_iterations_lower_the_loss_on_a_small_batch(digits, model, lr):
    config = tiny_config(model=model, iters=40, lr=lr, dropout=0.0, hidden=16, target_blend=0.0)
    few = digits.subset(np.arange(8), "8 digits")
    trainer = Trainer(config, np, few, few)  # batch == the whole set: the same 8 digits each step
    first = trainer.test_loss()
    for _ in range(config["iters"]):
        trainer.step()
    assert trainer.test_loss() < 0.92 * first  # seen: 0.87 (cnn-lstm), 0.61 (cnn-cnn)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    config = tiny_config(iters=100, lr=1e-3, warmup=10, min_lr_ratio=0.1)
    rates = [learning_rate(config, i) for i in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] == pytest.approx(1e-4, rel=0.01)


def assert_same_members(a, b):
    """Two lists of Trainers hold the same weights and weight averages, member by member."""
    assert len(a) == len(b)
    for one, other in zip(a, b):
        weights, other_weights = one.model.named_params(), other.model.named_params()
        for name in weights:
            np.testing.assert_array_equal(weights[name], other_weights[name], err_msg=name)
            np.testing.assert_array_equal(one.average.average[name], other.average.average[name], err_msg=name)
        assert one.average.t == other.average.t


@pytest.mark.parametrize("members", [1, 2])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(offline, tmp_path, members):
    straight = train(tiny_config(iters=6, members=members), tmp_path / "straight", progress=False)
    train(tiny_config(iters=3, members=members), tmp_path / "split", progress=False)
    resumed = train(tiny_config(iters=6, members=members), tmp_path / "split", resume=True, progress=False)
    assert resumed.iteration == straight.iteration == 6
    assert_same_members(straight.members, resumed.members)
    assert resumed.members[-1].average.t == 6
    with open(tmp_path / "split" / "log.csv") as f:
        iterations = [int(row["iteration"]) for row in csv.DictReader(f) if row["test_loss"]]
    assert iterations == [2, 3, 4, 6]  # every evaluation kept (3: the end of the first part)


def test_each_member_trains_as_the_run_of_its_own_seed_alone(offline, tmp_path):
    ensemble = train(tiny_config(iters=3, members=2, seed=5), tmp_path / "ensemble", progress=False)
    alone = [train(tiny_config(iters=3, seed=seed), tmp_path / f"seed{seed}", progress=False) for seed in (5, 6)]
    assert_same_members(ensemble.members, [run.members[0] for run in alone])
    params, optim, meta = load_checkpoint(tmp_path / "ensemble" / "checkpoint.npz")
    assert meta["config"]["members"] == 2 and meta["config"]["seed"] == 5
    single, _, _ = load_checkpoint(tmp_path / "seed6" / "checkpoint.npz")
    assert set(params) == {f"member{k}/{name}" for k in (0, 1) for name in single}
    assert {"member0/t", "member1/t"} <= set(optim)


def test_a_run_of_members_completes_with_their_mean(offline, tmp_path):
    from mnist_half.models import Ensemble

    train(tiny_config(iters=2, members=2), tmp_path / "ensemble", progress=False)
    model, meta = load_trained(tmp_path / "ensemble" / "checkpoint.npz", np)
    assert isinstance(model, Ensemble) and len(model.members) == 2
    images = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    first, second = (member.forward(images) for member in model.members.values())
    assert not np.allclose(first, second)  # two different models
    np.testing.assert_allclose(model.forward(images), (first + second) / 2, rtol=1e-6)
    average, _, _ = load_checkpoint(tmp_path / "ensemble" / "checkpoint.npz", group="average")
    inference = model.named_params()
    assert all(np.array_equal(inference[name], average[name]) for name in inference)  # the averaged weights


def test_members_learn_the_neighbour_blended_targets(offline, monkeypatch):
    from mnist_half.targets import blended_targets

    config = tiny_config(members=2, target_blend=0.3)
    train_set, test_set = load_split(config, progress=False)
    trainer = training.EnsembleTrainer(config, np, train_set, test_set)
    assert trainer.members[0].train_targets is trainer.members[1].train_targets  # computed once
    seen = []
    monkeypatch.setattr(training, "training_update", lambda model, optimizer, x, y, *rest: seen.append(y) or 0.0)
    trainer.step()
    expected = blended_targets(train_set.images, 0.3)
    for k, target in enumerate(seen):
        index = training.iteration_rng({**config, "seed": config["seed"] + k}, 0).choice(
            len(train_set), config["batch_size"], replace=False)
        np.testing.assert_array_equal(target, expected[index])
        assert not np.array_equal(target, train_set.images[index])


@pytest.mark.parametrize("few_digits, many", [(10**9, False), (2, True)], ids=["few digits", "many digits"])
def test_the_preset_is_settled_for_the_training_set_and_saved(few_digits, many, offline, tmp_path, monkeypatch):
    """The quick preset's "on_many_digits" applies on many training digits only (FEW_DIGITS
    moved so that the embedded digits count as either); the checkpoint keeps the settled
    values, so a resumed run learns the same targets with the same dropout."""
    from mnist_half import config as config_module

    monkeypatch.setattr(config_module, "FEW_DIGITS", few_digits)
    on_many = {"target_blend": 0.0, "dropout": 0.1}
    config = tiny_config(iters=2, target_blend=0.3, on_many_digits=on_many)
    train_set, test_set = load_split(config, progress=False)
    trainer = training.EnsembleTrainer(config, np, train_set, test_set)
    expected = {"target_blend": 0.0, "dropout": 0.1} if many else {"target_blend": 0.3, "dropout": 0.25}
    for settled in (trainer.config, trainer.members[0].config):
        assert {key: settled[key] for key in expected} == expected and settled["on_many_digits"] == {}
    assert trainer.members[0].model.decoder.dropout == expected["dropout"]
    assert np.array_equal(trainer.members[0].train_targets, train_set.images) == many
    train(config, tmp_path / "run", progress=False)
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.npz")[2]["config"]
    assert {key: saved[key] for key in expected} == expected and saved["on_many_digits"] == {}


def test_checkpoint_holds_weights_optimizer_state_and_config(offline, tmp_path):
    train(tiny_config(iters=2), tmp_path / "run", progress=False)
    params, optim, meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert meta["iteration"] == 2 and meta["config"]["hidden"] == 8
    assert any(k.startswith("encoder/conv1/") for k in params)
    assert int(optim["t"]) == 2 and any(k.endswith("/m") for k in optim)
    average, _, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz", group="average")
    inference, _, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz", group="inference")
    assert int(average["t"]) == 2 and set(inference) == set(params)
    assert all(np.array_equal(inference[k], average[k]) for k in params)  # evaluation uses the average
    assert not all(np.array_equal(inference[k], params[k]) for k in params)


def test_interrupt_saves_a_checkpoint_and_exits_130(offline, tmp_path, monkeypatch):
    calls = {"n": 0}
    real_step = Trainer.step

    def step_then_interrupt(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", step_then_interrupt)
    with pytest.raises(SystemExit) as exit_info:
        train(tiny_config(iters=10, checkpoint_every=100), tmp_path / "run", progress=False)
    assert exit_info.value.code == 130
    _, _, meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert meta["iteration"] == 3


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)],
                         ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_mid_iteration_takes_effect_after_it(signum, status, offline, tmp_path, monkeypatch, capsys):
    """A real SIGINT (or SIGTERM, as `kill` sends) between two members' updates: the
    iteration completes, then the checkpoint is saved with both members at the same
    iteration, the exit status is 128 + the signal's number, and resuming it gives the
    uninterrupted run's weights."""
    calls = {"n": 0}
    real_step = Trainer.step

    def step_with_signal(self):
        calls["n"] += 1
        if calls["n"] == 6:  # iteration 3, before the second member's update
            os.kill(os.getpid(), signum)
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", step_with_signal)
    with pytest.raises(SystemExit) as exit_info:
        train(tiny_config(iters=5, members=2, checkpoint_every=100), tmp_path / "run", progress=False)
    assert exit_info.value.code == status
    assert "interrupted" in capsys.readouterr().err
    _, optim, meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert meta["iteration"] == 3 and int(optim["member0/t"]) == int(optim["member1/t"]) == 3
    monkeypatch.setattr(Trainer, "step", real_step)
    resumed = train(tiny_config(iters=5, members=2), tmp_path / "run", resume=True, progress=False)
    straight = train(tiny_config(iters=5, members=2), tmp_path / "straight", progress=False)
    assert_same_members(straight.members, resumed.members)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_signal_the_process_was_started_to_ignore_stays_ignored(offline, tmp_path, monkeypatch):
    """Under `nohup` SIGHUP is ignored: a closed terminal must not stop the training."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    real_step = Trainer.step

    def step_with_sighup(self):
        if self.iteration == 1:
            os.kill(os.getpid(), signal.SIGHUP)
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", step_with_sighup)
    try:
        trainer = train(tiny_config(iters=3), tmp_path / "run", progress=False)
        assert trainer.iteration == 3 and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_default_out_dir_never_overwrites_an_earlier_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "cnn-lstm").mkdir(parents=True)
    (tmp_path / "runs" / "cnn-lstm" / "checkpoint.npz").write_bytes(b"x")
    out = resolve_out_dir({"model": "cnn-lstm"}, None, resume=False)
    assert out.name == "cnn-lstm-2"


@pytest.mark.parametrize("argv, message", [
    (["--iters", "0"], "--iters must be positive"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--members", "0"], "--members must be positive"),
    (["--target-blend", "1.5"], "--target-blend must be in [0, 1]"),
    (["--device", "gpu"], "gpu"),
    (["--resume"], "--resume"),
])
def test_bad_arguments_are_one_clear_line_and_exit_2(run_cli, offline, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, "get_xp", _no_gpu)
    with pytest.raises(SystemExit) as exit_info:
        run_cli("train", argv + ["--no-progress"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error:") and "Traceback" not in err


def test_existing_run_without_resume_is_refused(run_cli, offline, tmp_path, capsys):
    train(tiny_config(iters=1), tmp_path / "run", progress=False)
    with pytest.raises(SystemExit) as exit_info:
        run_cli("train", ["--out", str(tmp_path / "run"), "--iters", "2", "--no-progress"])
    assert exit_info.value.code == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_keeps_the_runs_length_unless_iters_is_given(offline, tmp_path):
    """`--resume` without --iters continues to the run's own last iteration (its schedule
    unchanged), not to the preset's; --iters, --checkpoint-every and --device may change."""
    from mnist_half.runs import resume_config

    train(tiny_config(iters=3, checkpoint_every=2), tmp_path / "run", progress=False)
    checkpoint = tmp_path / "run" / "checkpoint.npz"
    command = make_config("quick", {"device": "cpu"})
    kept = resume_config(checkpoint, command, {})
    assert (kept["iters"], kept["checkpoint_every"]) == (3, 2) != (command["iters"], command["checkpoint_every"])
    changed = resume_config(checkpoint, command | {"iters": 7, "checkpoint_every": 5},
                            {"iters": 7, "checkpoint_every": 5})
    assert (changed["iters"], changed["checkpoint_every"], changed["device"]) == (7, 5, "cpu")


def _no_gpu(device):
    from tinynet.backend import DeviceError, get_xp

    if device == "gpu":
        raise DeviceError("--device gpu was asked for, but CuPy is not installed")
    return get_xp(device)


def test_cuda_graph_is_on_by_default_and_off_with_its_flag():
    on = make_config("quick", {"cuda_graph": None})  # a flag not given is None
    off = make_config("quick", {"cuda_graph": False})
    assert on["cuda_graph"] is True and off["cuda_graph"] is False
    assert on["lr"] == PRESETS["quick"]["lr"] and on["average_decay"] == 0.999


def test_trainer_on_the_cpu_keeps_no_graph_and_sums_the_loss_on_its_array(offline):
    config = tiny_config(iters=3)
    train_set, test_set = load_split(config, progress=False)
    trainer = Trainer(config, np, train_set, test_set)
    assert trainer.graph is None
    for _ in range(3):
        trainer.step()
    summed = float(trainer.loss_sum)
    assert trainer.pop_train_loss() == pytest.approx(summed / 3) and float(trainer.loss_sum) == 0.0
    assert trainer.average.t == 3


def test_a_long_run_on_few_digits_is_warned_and_the_presets_fit_their_data():
    embedded_train = 3_750  # 75 % of the embedded 5,000 digits
    assert few_digits_warning(embedded_train, PRESETS["quick"]["iters"]) is None
    warning = few_digits_warning(embedded_train, PRESETS["paper"]["iters"])
    assert "500,000 iterations on 3,750 training digits" in warning and "--data" in warning
    assert few_digits_warning(52_500, PRESETS["paper"]["iters"]) is None  # full MNIST, 75 %


def test_train_prints_the_warning_for_a_long_run_on_the_embedded_digits(offline, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(training, "LONG_RUN", 1)  # so that 2 iterations count as long
    train(tiny_config(iters=2), tmp_path / "run", progress=False)
    assert "warning: 2 iterations on 3,750 training digits overfit" in capsys.readouterr().err
    monkeypatch.setattr(training, "LONG_RUN", 2)
    train(tiny_config(iters=2), tmp_path / "again", progress=False)
    assert "warning" not in capsys.readouterr().err
