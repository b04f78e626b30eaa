"""Training (section 5.3): the learning-rate schedule, one iteration's array work, the
Trainer of one model, the EnsembleTrainer of a run's members, and the loop that logs,
evaluates and checkpoints a run so that it survives a crash or Ctrl-C.
"""

import contextlib
import math
import signal
import sys
import threading
import time

import numpy as np
from tqdm import tqdm

from tinynet.backend import device_name, get_xp
from tinynet.functional.losses import rmse_loss
from tinynet.optim import OPTIMIZERS, WeightAverage, update_parameters
from tinynet.threads import ThreadChooser

from .checkpoint import FORMAT, load_checkpoint, save_checkpoint
from .cli import TrainingDiverged
from .config import CHECKPOINT, FEW_DIGITS, INFERENCE_BATCH, LOG, check_fits, settle_for_data
from .corruption import corrupt, corrupt_held_out
from .files import make_folder
from .models import build_model
from .runs import RunLog, load_split
from .targets import blended_targets

# On the embedded 3,750 training digits the CNN-LSTM's redrawn lower half is best after about
# 4,000-5,000 iterations and worsens after that (docs/training.md, "Schedule length and
# overfitting"), so a long run on fewer than FEW_DIGITS digits gets a warning.
LONG_RUN = 10_000
CHECKPOINT_SECONDS = 300  # also save every few minutes, whatever --checkpoint-every says
LOG_EVERY = 50  # iterations between two training-loss rows of log.csv
DROPOUT_SEED_LIMIT = 2**31  # each iteration's dropout seed is drawn from [0, DROPOUT_SEED_LIMIT)


def learning_rate(config, iteration):
    """Linear warm-up, then cosine decay to min_lr_ratio * lr (docs/training.md, "Learning rate and
    warm-up: the dead thought vector")."""
    lr, warmup, total = config["lr"], config["warmup"], config["iters"]
    if iteration < warmup:
        return lr * (iteration + 1) / warmup
    progress = min(1.0, (iteration - warmup) / max(1, total - warmup))
    floor = config["min_lr_ratio"]
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def few_digits_warning(train_digits, iters):
    """The warning for a run of `iters` iterations on `train_digits` digits, or None."""
    if train_digits >= FEW_DIGITS or iters <= LONG_RUN:
        return None
    return (f"mnist-half: warning: {iters:,} iterations on {train_digits:,} training digits overfit: on the "
            "embedded digits the redrawn lower half is best near 4,000-5,000 iterations and worsens after "
            "(docs/training.md); long runs such as --preset paper want full MNIST (--data DIR)")


def training_targets(config, train_set, progress=False):
    """What the network learns to output for each training digit: the clean digit, its
    lower half blended with its nearest neighbours' by config["target_blend"]."""
    return blended_targets(train_set.images, config["target_blend"], config["target_neighbours"], progress=progress)


def iteration_rng(config, iteration):
    """The generator of one iteration's batch, noise and dropout: resuming at any
    iteration draws exactly what an uninterrupted run would have drawn."""
    return np.random.default_rng((config["seed"], iteration))


def training_update(model, optimizer, x, y, l2, clip, average=None):
    """The array work of one iteration (section 5.3): forward, RMSE (eq. 15), backward,
    L2 on the weights (eq. 17), gradient clipping, the optimizer's update and the weight
    average's (if any), with the scalars of their latest `begin_step`
    (tinynet.optim.update_parameters). Returns the batch's RMSE, a 0-d array (no sync)."""
    y_hat = model.forward(x, train=True)
    loss, dy = rmse_loss(y_hat, y)
    model.backward(dy)
    update_parameters(model.named_params(), model.named_grads(), model.named_weights(), optimizer, l2, clip, average)
    return loss


def capture_step(update, xp, updaters, inputs=(), cuda_graph=True):
    """Prepare the array work `update()` of a training step to run on array module `xp`;
    returns the CapturedStep that replays it, or None where it runs eagerly.

    On the GPU the scalars of `updaters` (the optimizer, the weight average) are kept in
    device buffers, which the fused update reads; with `cuda_graph`, `update` is captured
    in a CUDA graph after two eager steps (tinynet.accel.gpu.graph), and each launch
    first writes its host arrays into the device buffers `inputs` that `update` reads.
    """
    if xp is np:
        return None
    for updater in updaters:
        updater.keep_scalars_on_device(xp, np.float32)
    if not cuda_graph:
        return None
    from tinynet.accel.gpu.graph import CapturedStep

    return CapturedStep(update, inputs=inputs)


def completion_rmse(batches, clean, xp):
    """RMSE of completions given batch by batch against the clean digits."""
    completed = xp.concatenate(batches)
    return math.sqrt(float(xp.mean((completed - clean) ** 2)))


class Trainer:
    """Owns the model, the optimizer and the data of one run (or of one member of a run,
    EnsembleTrainer); `step()` is one iteration.

    On the GPU the array work of a step, the weight average's included, is replayed from a
    CUDA graph (config["cuda_graph"], `capture_step`): the batch, the optimizer's and the
    average's scalars and the dropout seed are written to device buffers that the graph
    reads, and the loss is summed on the device, read back only when logged.
    """

    def __init__(self, config, xp, train_set, test_set, targets=None):
        """targets: the training targets of train_set's digits (mnist_half.targets), made
        from the config, settled for train_set's size (mnist_half.config.settle_for_data), when
        not given."""
        config = settle_for_data(config, len(train_set))
        self.config, self.xp = config, xp
        self.train_images = train_set.images
        self.train_targets = training_targets(config, train_set) if targets is None else targets
        mean_intensity = float(self.train_images.mean())
        self.model = build_model(config["model"], np.random.default_rng(config["seed"]), config, mean_intensity)
        self.model.to(xp)
        self.optimizer = OPTIMIZERS[config["optimizer"]](lr=config["lr"])
        self.average = WeightAverage(self.model.named_params(), config["average_decay"])
        self.iteration = 0
        held_out = test_set.images[: config["eval_digits"]]
        self.test_clean = xp.asarray(held_out)
        self.test_input = xp.asarray(corrupt_held_out(held_out, config))
        self.loss_sum, self.losses_summed = xp.zeros((), dtype=np.float32), 0
        shape = (config["batch_size"],) + self.train_images.shape[1:]
        batch = xp.empty(shape, dtype=np.float32), xp.empty(shape, dtype=np.float32)
        self.graph = capture_step(lambda: self._update(*batch), xp, (self.optimizer, self.average), batch,
                                  config.get("cuda_graph", True))

    def _update(self, noisy, target):
        loss = training_update(self.model, self.optimizer, noisy, target, self.config["l2"], self.config["clip"],
                               self.average)
        self.loss_sum += loss
        return loss

    def step(self):
        """One training iteration: draw the batch and its noise on the host, then the array work."""
        config, xp = self.config, self.xp
        rng = iteration_rng(config, self.iteration)
        index = rng.choice(len(self.train_images), config["batch_size"], replace=False)
        noisy = corrupt(self.train_images[index], rng, config["noise"], config["noise_amount"])
        target = self.train_targets[index]
        self.model.seed_dropout(int(rng.integers(DROPOUT_SEED_LIMIT)))
        self.optimizer.lr = learning_rate(config, self.iteration)
        self.optimizer.begin_step()
        self.average.begin_step()
        if self.graph is not None:
            self.graph.launch(noisy, target)
        else:
            self._update(xp.asarray(noisy), xp.asarray(target))
        self.iteration += 1
        self.losses_summed += 1

    def is_finite(self):
        """Whether the loss summed since the last read-back and every weight are finite: one
        read-back per parameter, so it is asked before a checkpoint is written, not every step."""
        xp = self.xp
        return bool(xp.isfinite(self.loss_sum)) and all(bool(xp.isfinite(value).all())
                                                        for value in self.model.named_params().values())

    def pop_train_loss(self):
        """Mean training RMSE of the steps since the last call (the one read-back of the loop)."""
        mean = float(self.loss_sum) / max(1, self.losses_summed)
        self.loss_sum.fill(0)
        self.losses_summed = 0
        return mean

    def test_completions(self, batch_size=INFERENCE_BATCH):
        """The averaged weights' completions of the fixed held-out digits (fixed corruption,
        so they compare), batch by batch; the training weights are put back afterwards."""
        training_weights = {name: value.copy() for name, value in self.model.named_params().items()}
        self.model.load_params(self.average.average)
        completions = [self.model.forward(self.test_input[start:start + batch_size], train=False)
                       for start in range(0, len(self.test_input), batch_size)]
        self.model.load_params(training_weights)
        return completions

    def test_loss(self):
        """RMSE of the averaged weights over the fixed held-out digits."""
        return completion_rmse(self.test_completions(), self.test_clean, self.xp)

    def state(self):
        """(weights, optimizer state, weight average's state): what resuming needs."""
        return self.model.named_params(), self.optimizer.state_dict(), self.average.state_dict()

    def restore(self, params, optimizer_state, average, iteration, loss_sum=0.0, losses_summed=0):
        """Continue from what state() returned, at `iteration`, with the training loss summed
        over the `losses_summed` steps since its last read-back (so the next log.csv row is
        the uninterrupted run's). optimizer_state None starts the optimizer afresh. A
        checkpoint of format 1 without an `average/` group (written before the weight
        average existed) starts the average at the checkpoint's weights."""
        self.model.load_params(params)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state, self.xp)
        self.average.load_state_dict(average or {"t": 0, **params}, self.xp)
        self.iteration = iteration
        self.loss_sum[...] = loss_sum
        self.losses_summed = losses_summed


def member_prefix(k, members):
    """The checkpoint key prefix of member k of a run of `members`: none for a single model."""
    return "" if members == 1 else f"member{k}/"


def strip_member_prefix(flat, prefix):
    """The entries of `flat` whose keys start with `prefix`, with the prefix removed."""
    return {name[len(prefix):]: value for name, value in flat.items() if name.startswith(prefix)}


class EnsembleTrainer:
    """config["members"] Trainers side by side, one step of each per iteration. Member k
    trains exactly as the run of seed + k alone would (its own initialisation, batches,
    noise and dropout), so a run of K members is K independent runs; its test loss and its
    completions are their mean (mnist_half.models.Ensemble). One member is a plain run, and
    its checkpoint has the plain keys; with several each key starts with 'member{k}/'.
    """

    def __init__(self, config, xp, train_set, test_set, progress=False):
        """config is settled for train_set's size (mnist_half.config.settle_for_data) and
        checked against it before any work: self.config is what the checkpoint stores."""
        config = settle_for_data(config, len(train_set))
        check_fits(config, len(train_set))
        self.config, self.xp = config, xp
        targets = training_targets(config, train_set, progress)
        self.members = [Trainer({**config, "seed": config["seed"] + k}, xp, train_set, test_set, targets)
                        for k in range(config["members"])]

    @property
    def iteration(self):
        return self.members[0].iteration

    @property
    def lr(self):
        return self.members[0].optimizer.lr

    def step(self):
        for member in self.members:
            member.step()

    def pop_train_loss(self):
        """Mean training RMSE over the members and the steps since the last call."""
        return sum(member.pop_train_loss() for member in self.members) / len(self.members)

    def test_loss(self):
        """RMSE of the members' mean completion of the fixed held-out digits."""
        each = [member.test_completions() for member in self.members]
        mean = [sum(batches) / len(batches) for batches in zip(*each)]
        return completion_rmse(mean, self.members[0].test_clean, self.xp)

    def state(self, elapsed_s, data_source):
        """Arguments of save_checkpoint: every member's state under its prefix, and the meta."""
        merged = ({}, {}, {})
        for k, member in enumerate(self.members):
            prefix = member_prefix(k, len(self.members))
            for into, part in zip(merged, member.state()):
                into.update({prefix + name: value for name, value in part.items()})
        meta = {"format": FORMAT, "iteration": self.iteration, "config": self.config,
                "elapsed_s": elapsed_s, "data_source": data_source,
                "train_loss_sums": [float(member.loss_sum) for member in self.members],
                "train_loss_steps": [member.losses_summed for member in self.members]}
        params, optimizer_state, average = merged
        return params, optimizer_state, meta, average

    def is_finite(self):
        return all(member.is_finite() for member in self.members)

    def restore(self, path, reset_optimizer=False):
        """Continue the run saved at `path`; reset_optimizer starts the optimizers afresh."""
        params, optimizer_state, meta = load_checkpoint(path)
        average, _, _ = load_checkpoint(path, group="average")
        members = len(self.members)
        loss_sums = meta.get("train_loss_sums", [0.0] * members)
        loss_steps = meta.get("train_loss_steps", [0] * members)
        for k, member in enumerate(self.members):
            prefix = member_prefix(k, members)
            own_optimizer_state = None if reset_optimizer else strip_member_prefix(optimizer_state, prefix)
            member.restore(strip_member_prefix(params, prefix), own_optimizer_state,
                           strip_member_prefix(average, prefix), meta["iteration"], loss_sums[k], loss_steps[k])
        return meta


# Signals that stop a training as Ctrl-C does: Ctrl-C, `kill` and a job scheduler's stop
# (SIGTERM), and the terminal closing (SIGHUP, where the platform has it).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def interrupts_between_iterations():
    """Hold the STOP_SIGNALS while the block runs: the list it yields gets an entry per
    signal, and the loop acts on it between iterations, so an interrupt never leaves a
    half-applied update, or members at different iterations, to the checkpoint. A signal
    the process was started to ignore stays ignored (SIGHUP under `nohup`, SIGINT in a
    background job). Off the main thread (where signals cannot be caught) the list stays empty."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    held = [signum for signum in STOP_SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in held}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def train(config, out_dir, resume=False, progress=True, log_every=LOG_EVERY, reset_optimizer=False):
    """Run (or resume) training into `out_dir`; returns the EnsembleTrainer at its last iteration.

    Ctrl-C saves a checkpoint and exits with status 130 (SIGTERM and SIGHUP too, with 128 +
    the signal's number); it takes effect between two iterations, so the checkpoint never
    holds half an update, and the signals stay held while that checkpoint is written. A
    checkpoint is written only while the loss and the weights are finite: a NaN or infinity
    stops the run with TrainingDiverged (exit status 3), the last good checkpoint untouched.
    reset_optimizer: resume with the optimizers started afresh."""
    xp = get_xp(config["device"])
    train_set, test_set = load_split(config, progress=progress)
    trainer = EnsembleTrainer(config, xp, train_set, test_set, progress)
    config = trainer.config  # settled for the training set's size
    make_folder(out_dir, "--out")
    checkpoint_path = out_dir / CHECKPOINT
    elapsed_before = 0.0
    saved_iteration = None
    if resume:
        meta = trainer.restore(checkpoint_path, reset_optimizer)
        elapsed_before = meta["elapsed_s"]
        saved_iteration = trainer.iteration
    log = RunLog(out_dir / LOG, trainer.iteration if resume else None)
    print(f"mnist-half: {config['model']} on {device_name(xp)}, data: {train_set.source}", file=sys.stderr)
    warning = few_digits_warning(len(train_set), config["iters"])
    if warning:
        print(warning, file=sys.stderr)

    members = config["members"]
    bar = tqdm(total=config["iters"], initial=trainer.iteration, unit="it", disable=not progress,
               desc=config["model"] + (f" x{members}" if members > 1 else ""), dynamic_ncols=True)
    status = {}
    # On the CPU: every usable core, or one thread while other programs make that faster.
    threads = ThreadChooser() if xp is np else None
    start = last_save = time.perf_counter()

    def elapsed():
        return elapsed_before + time.perf_counter() - start

    def diverged(what):
        if saved_iteration is None:
            kept = "; no checkpoint was written"
        else:
            kept = f" after iteration {saved_iteration}; {checkpoint_path} keeps iteration {saved_iteration}"
        return TrainingDiverged(
            f"training diverged by iteration {trainer.iteration}: {what} became NaN or infinite{kept}. Try a "
            f"smaller --lr than {config['lr']:g} (e.g. {config['lr'] / 10:g}) in a new run")

    def save():
        nonlocal last_save, saved_iteration
        if not trainer.is_finite():
            raise diverged("the loss or the weights")
        save_checkpoint(checkpoint_path, *trainer.state(elapsed(), train_set.source))
        last_save = time.perf_counter()
        saved_iteration = trainer.iteration

    def log_and_save():
        it = trainer.iteration
        last = it == config["iters"]
        if it % log_every == 0 or last:
            train_loss = trainer.pop_train_loss()
            if not math.isfinite(train_loss):
                raise diverged("the training loss")
            log.write(it, train_loss=f"{train_loss:.5f}", elapsed_s=elapsed())
            status.update(loss=f"{train_loss:.4f}", lr=f"{trainer.lr:.1e}")
            bar.set_postfix(status)
        if it % config["eval_every"] == 0 or last:
            test_loss = trainer.test_loss()
            log.write(it, test_loss=f"{test_loss:.5f}", elapsed_s=elapsed())
            status.update(test=f"{test_loss:.4f}")
            bar.set_postfix(status)
        if it % config["checkpoint_every"] == 0 or last or time.perf_counter() - last_save > CHECKPOINT_SECONDS:
            save()

    try:
        with interrupts_between_iterations() as interrupted:
            try:
                while trainer.iteration < config["iters"] and not interrupted:
                    step_start = time.perf_counter()
                    trainer.step()
                    if threads is not None:
                        threads.step_done(time.perf_counter() - step_start)
                    bar.update(1)
                    log_and_save()
            except KeyboardInterrupt:  # raised by code, not by the held signal
                interrupted.append(signal.SIGINT)
            if interrupted:
                save()  # still inside: a second Ctrl-C cannot cut this save short
    finally:
        bar.close()
    if interrupted:
        signum = interrupted[0]
        by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
        print(f"\ninterrupted{by} at iteration {trainer.iteration}: saved {checkpoint_path}; "
              f"continue with: python -m mnist_half.train --out {out_dir} --resume", file=sys.stderr)
        raise SystemExit(128 + signum)  # what a shell reports for a command the signal stopped (130: Ctrl-C)
    return trainer
