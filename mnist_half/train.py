"""python -m mnist_half.train: train the CNN-LSTM (or the CNN-CNN baseline) on half-blanked,
noisy MNIST digits (section 5), with checkpoints that survive a crash or Ctrl-C.

The run folder gets checkpoint.npz (weights, optimizer state, iteration, config),
log.csv (iteration, train loss, periodic test loss), metrics.json and figures.
"""

import argparse
import contextlib
import csv
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinynet.backend import device_name, get_xp
from tinynet.functional.losses import rmse_loss
from tinynet.optim import OPTIMIZERS, WeightAverage, update_parameters

from .checkpoint import load_checkpoint, save_checkpoint
from .cli import UsageError, run_command
from .corruption import NOISES, corrupt, corrupt_test_set
from .data import load_mnist, split_dataset
from .models import MODELS, build_model
from .targets import blended_targets

# The paper's run (section 5.3): 500k iterations of batch 100 with Adam. `quick` is sized
# for a 2-core CPU: 3 members of about 5 minutes each on the embedded digits (AVX-512), measured
# (docs/training.md, sixth round).
PRESETS = {
    "quick": {"iters": 4000, "batch_size": 100, "optimizer": "adam", "lr": 4e-3, "warmup": 500, "target_blend": 0.3,
              "members": 3},
    "paper": {"iters": 500_000, "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "warmup": 1000},
}
DEFAULTS = {
    "model": "cnn-lstm", "preset": "quick", "device": "auto", "noise": "sp", "noise_amount": None,
    "hidden": 128, "layers": 5, "dropout": 0.25, "literal_eq13": False, "l2": 1e-6, "clip": 1.0,
    "min_lr_ratio": 0.05, "seed": 0, "split_seed": 0, "test_fraction": 0.25, "official_split": False,
    "data": None, "eval_every": 250, "eval_digits": 500, "checkpoint_every": 500, "cuda_graph": True,
    "average_decay": 0.999, "members": 1, "target_blend": 0.0, "target_neighbours": 25,
}
# On the embedded 3,750 training digits the CNN-LSTM's redrawn lower half is best after about
# 4,000-5,000 iterations and worsens after that (docs/training.md, fourth round), so a long
# run on that few digits gets a warning.
FEW_DIGITS, LONG_RUN = 10_000, 10_000
CHECKPOINT_SECONDS = 300  # also save every few minutes, whatever --checkpoint-every says
CHECKPOINT = "checkpoint.npz"
TEST_NOISE_SEED = 1  # the held-out digits' corruption is fixed, so evaluations compare


def learning_rate(config, iteration):
    """Linear warm-up, then cosine decay to min_lr_ratio * lr (docs/training.md)."""
    lr, warmup, total = config["lr"], config["warmup"], config["iters"]
    if iteration < warmup:
        return lr * (iteration + 1) / warmup
    progress = min(1.0, (iteration - warmup) / max(1, total - warmup))
    floor = config["min_lr_ratio"]
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def load_split(config, progress=True):
    """(train, test) digits of the run's data source and seeded split (section 5.1)."""
    dataset = load_mnist(config["data"], progress=progress)
    return split_dataset(dataset, config["test_fraction"], config["split_seed"], config["official_split"])


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


class Trainer:
    """Owns the model, the optimizer and the data of one run (or of one member of a run,
    EnsembleTrainer); `step()` is one iteration.

    On the GPU the array work of a step, the weight average's included, is captured in a
    CUDA graph after two eager steps and replayed from then on (config["cuda_graph"];
    tinynet.accel.gpu.graph): the batch, the optimizer's and the average's scalars and
    the dropout seed are written to device buffers that the graph reads, and the loss is
    summed on the device, read back only when logged.
    """

    def __init__(self, config, xp, train_set, test_set, targets=None):
        """targets: the training targets of train_set's digits (mnist_half.targets), made
        from the config when not given."""
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
        self.test_input = xp.asarray(corrupt_test_set(held_out, config["noise"], TEST_NOISE_SEED, config["noise_amount"]))
        self.loss_sum, self.losses_summed = xp.zeros((), dtype=np.float32), 0
        self.graph = None
        if xp is not np:
            self.optimizer.keep_scalars_on_device(xp, np.float32)
            self.average.keep_scalars_on_device(xp, np.float32)
        if xp is not np and config.get("cuda_graph", True):
            from tinynet.accel.gpu.graph import CapturedStep

            shape = (config["batch_size"],) + self.train_images.shape[1:]
            batch = xp.empty(shape, dtype=np.float32), xp.empty(shape, dtype=np.float32)
            self.graph = CapturedStep(lambda: self._update(*batch), inputs=batch)

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
        self.model.seed_dropout(int(rng.integers(2**31)))
        self.optimizer.lr = learning_rate(config, self.iteration)
        self.optimizer.begin_step()
        self.average.begin_step()
        if self.graph is not None:
            self.graph.launch(noisy, target)
        else:
            self._update(xp.asarray(noisy), xp.asarray(target))
        self.iteration += 1
        self.losses_summed += 1

    def pop_train_loss(self):
        """Mean training RMSE of the steps since the last call (the one read-back of the loop)."""
        mean = float(self.loss_sum) / max(1, self.losses_summed)
        self.loss_sum.fill(0)
        self.losses_summed = 0
        return mean

    def test_completions(self, batch_size=250):
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

    def restore(self, params, optimizer_state, average, iteration):
        """Continue from what state() returned, at `iteration`."""
        self.model.load_params(params)
        self.optimizer.load_state_dict(optimizer_state, self.xp)
        # runs saved before weight averaging start their average at the checkpoint
        self.average.load_state_dict(average or {"t": 0, **params}, self.xp)
        self.iteration = iteration


def completion_rmse(batches, clean, xp):
    """RMSE of completions given batch by batch against the clean digits."""
    completed = xp.concatenate(batches)
    return math.sqrt(float(xp.mean((completed - clean) ** 2)))


class EnsembleTrainer:
    """config["members"] Trainers side by side, one step of each per iteration. Member k
    trains exactly as the run of seed + k alone would (its own initialisation, batches,
    noise and dropout), so a run of K members is K independent runs; its test loss and its
    completions are their mean (mnist_half.models.Ensemble). One member is a plain run, and
    its checkpoint has the plain keys; with several each key starts with 'member{k}/'.
    """

    def __init__(self, config, xp, train_set, test_set, progress=False):
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

    def _prefix(self, k):
        return "" if len(self.members) == 1 else f"member{k}/"

    def state(self, elapsed_s, data_source):
        """Arguments of save_checkpoint: every member's state under its prefix, and the meta."""
        merged = ({}, {}, {})
        for k, member in enumerate(self.members):
            for into, part in zip(merged, member.state()):
                into.update({self._prefix(k) + name: value for name, value in part.items()})
        meta = {"format": 1, "iteration": self.iteration, "config": self.config,
                "elapsed_s": elapsed_s, "data_source": data_source}
        params, optimizer_state, average = merged
        return params, optimizer_state, meta, average

    def restore(self, path):
        params, optimizer_state, meta = load_checkpoint(path)
        average, _, _ = load_checkpoint(path, group="average")
        for k, member in enumerate(self.members):
            prefix = self._prefix(k)

            def own(flat):
                return {name[len(prefix):]: value for name, value in flat.items() if name.startswith(prefix)}

            member.restore(own(params), own(optimizer_state), own(average), meta["iteration"])
        return meta


@contextlib.contextmanager
def interrupts_between_iterations():
    """Hold Ctrl-C (SIGINT) while the block runs: the list it yields gets an entry per
    signal, and the loop acts on it between iterations, so an interrupt never leaves a
    half-applied update, or members at different iterations, to the checkpoint. Off the
    main thread (where signals cannot be caught) the list stays empty."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def resolve_out_dir(config, out, resume):
    """--out, or runs/<model> (runs/<model>-2, -3, ... rather than overwrite an earlier run)."""
    if out is not None:
        out = Path(out)
        if (out / CHECKPOINT).exists() and not resume:
            raise UsageError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
        if resume and not (out / CHECKPOINT).exists():
            raise UsageError(f"--resume: no {CHECKPOINT} in {out}")
        return out
    base = Path("runs") / config["model"]
    if resume:
        if not (base / CHECKPOINT).exists():
            raise UsageError(f"--resume: no {CHECKPOINT} in {base} (give the run folder with --out)")
        return base
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


class RunLog:
    """log.csv: one row per logged iteration (train loss) and per evaluation (test loss)."""

    FIELDS = ("iteration", "train_loss", "test_loss", "elapsed_s")

    def __init__(self, path, resume_iteration):
        self.path = path
        rows = []
        if path.exists() and resume_iteration is not None:  # drop rows past the checkpoint
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= resume_iteration]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, iteration, train_loss="", test_loss="", elapsed_s=0.0):
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.FIELDS).writerow(
                {"iteration": iteration, "train_loss": train_loss, "test_loss": test_loss,
                 "elapsed_s": f"{elapsed_s:.1f}"})


def train(config, out_dir, resume=False, progress=True, log_every=50):
    """Run (or resume) training into `out_dir`; returns the EnsembleTrainer at its last iteration.

    Ctrl-C saves a checkpoint and exits with status 130; it takes effect between two
    iterations, so the checkpoint never holds half an update."""
    xp = get_xp(config["device"])
    train_set, test_set = load_split(config, progress=progress)
    trainer = EnsembleTrainer(config, xp, train_set, test_set, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT
    elapsed_before = 0.0
    if resume:
        meta = trainer.restore(checkpoint_path)
        elapsed_before = meta["elapsed_s"]
    log = RunLog(out_dir / "log.csv", trainer.iteration if resume else None)
    print(f"mnist-half: {config['model']} on {device_name(xp)}, data: {train_set.source}", file=sys.stderr)
    warning = few_digits_warning(len(train_set), config["iters"])
    if warning:
        print(warning, file=sys.stderr)

    start = last_save = time.perf_counter()
    elapsed = lambda: elapsed_before + time.perf_counter() - start  # noqa: E731

    def save():
        nonlocal last_save
        save_checkpoint(checkpoint_path, *trainer.state(elapsed(), train_set.source))
        last_save = time.perf_counter()

    def log_and_save():
        it = trainer.iteration
        if it % log_every == 0 or it == config["iters"]:
            train_loss = trainer.pop_train_loss()
            log.write(it, train_loss=f"{train_loss:.5f}", elapsed_s=elapsed())
            status.update(loss=f"{train_loss:.4f}", lr=f"{trainer.lr:.1e}")
            bar.set_postfix(status)
        if it % config["eval_every"] == 0 or it == config["iters"]:
            test_loss = trainer.test_loss()
            log.write(it, test_loss=f"{test_loss:.5f}", elapsed_s=elapsed())
            status.update(test=f"{test_loss:.4f}")
            bar.set_postfix(status)
        if (it % config["checkpoint_every"] == 0 or it == config["iters"]
                or time.perf_counter() - last_save > CHECKPOINT_SECONDS):
            save()

    members = config["members"]
    bar = tqdm(total=config["iters"], initial=trainer.iteration, unit="it", disable=not progress,
               desc=config["model"] + (f" x{members}" if members > 1 else ""), dynamic_ncols=True)
    status = {}
    try:
        with interrupts_between_iterations() as interrupted:
            while trainer.iteration < config["iters"]:
                trainer.step()
                bar.update(1)
                log_and_save()
                if interrupted:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        save()
        print(f"\ninterrupted at iteration {trainer.iteration}: saved {checkpoint_path}; "
              f"continue with: python -m mnist_half.train --out {out_dir} --resume", file=sys.stderr)
        raise SystemExit(130)
    bar.close()
    return trainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default=DEFAULTS["device"])
    parser.add_argument("--model", choices=tuple(MODELS), default=DEFAULTS["model"])
    parser.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULTS["preset"],
                        help="quick: 3 members, ~15 min on a 2-core CPU; paper: 500k iterations (section 5.3), ~27 min on an H200, wants full MNIST")
    parser.add_argument("--iters", type=int, help="iterations (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="default: the preset's (100)")
    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="default: the preset's (adam)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    parser.add_argument("--noise", choices=tuple(NOISES), default=DEFAULTS["noise"],
                        help="sp: salt-and-pepper; gauss: white Gaussian noise")
    parser.add_argument("--hidden", type=int, default=DEFAULTS["hidden"], help="LSTM hidden size")
    parser.add_argument("--layers", type=int, default=DEFAULTS["layers"], help="LSTM layers")
    parser.add_argument("--literal-eq13", action="store_true", help="h_t = tanh(C_t) * i_t as printed (eq. 13)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--target-blend", type=float,
                        help="blend of each training digit's lower-half target with its nearest neighbours' "
                             "(0: the digit itself; default: the preset's)")
    parser.add_argument("--target-neighbours", type=int,
                        help=f"how many neighbours --target-blend averages (default {DEFAULTS['target_neighbours']})")
    parser.add_argument("--members", type=int,
                        help="train this many models side by side (seeds S, S+1, ...) and complete with their mean "
                             "(default: the preset's)")
    parser.add_argument("--data", help="folder with the four MNIST IDX files (else env MNIST_HALF_DATA, "
                                       "the cache, a download, or the embedded 5,000 digits)")
    parser.add_argument("--official-split", action="store_true", help="keep MNIST's 60k/10k split")
    parser.add_argument("--out", help="run folder (default runs/<model>, never overwriting)")
    parser.add_argument("--checkpoint-every", type=int, default=DEFAULTS["checkpoint_every"])
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false", default=None,
                        help="GPU: run every step eagerly instead of replaying a captured CUDA graph")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def config_from_args(args):
    config = dict(DEFAULTS)
    config.update(PRESETS[args.preset])
    for key in ("device", "model", "preset", "noise", "hidden", "layers", "literal_eq13", "seed", "data",
                "official_split", "checkpoint_every", "iters", "batch_size", "optimizer", "lr", "cuda_graph",
                "members", "target_blend", "target_neighbours"):
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    for key in ("iters", "batch_size", "hidden", "layers", "checkpoint_every", "members", "target_neighbours"):
        if config[key] <= 0:
            raise UsageError(f"--{key.replace('_', '-')} must be positive, got {config[key]}")
    if config["lr"] <= 0:
        raise UsageError(f"--lr must be positive, got {config['lr']}")
    if not 0 <= config["target_blend"] <= 1:
        raise UsageError(f"--target-blend must be in [0, 1], got {config['target_blend']}")
    return config


def main(argv=None):
    args = parse_args(argv)
    config = config_from_args(args)
    out_dir = resolve_out_dir(config, args.out, args.resume)
    if args.resume:
        _, _, meta = load_checkpoint(out_dir / CHECKPOINT)
        config = {**DEFAULTS, **meta["config"], "iters": config["iters"] if args.iters else meta["config"]["iters"],
                  "device": config["device"], "cuda_graph": config["cuda_graph"]}
    trainer = train(config, out_dir, resume=args.resume, progress=not args.no_progress)
    report_run(out_dir, config["device"], progress=not args.no_progress)
    print(f"wrote {out_dir}/ ({CHECKPOINT}, log.csv, metrics.json, figure6.png, figure7.png) "
          f"after {trainer.iteration} iterations")
    other = "cnn-cnn" if config["model"] == "cnn-lstm" else "cnn-lstm"
    print(f"next: python -m mnist_half.evaluate --checkpoint {out_dir / CHECKPOINT}\n"
          f"      python -m mnist_half.train --model {other}   # then compare both:\n"
          f"      python -m mnist_half.figures --runs {out_dir} runs/{other} --out figures")


def report_run(out_dir, device, progress=True):
    """metrics.json (mnist_half.evaluate) and this run's Figures 6 and 7."""
    from .evaluate import evaluate_checkpoint, format_table  # they import this module
    from .figures import figure6, figure7

    report = evaluate_checkpoint(out_dir / CHECKPOINT, device, progress=progress)
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    figure6([out_dir], out_dir / "figure6.png")
    figure7([out_dir], out_dir / "figure7.png")


if __name__ == "__main__":
    run_command(main)
