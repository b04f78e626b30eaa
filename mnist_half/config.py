"""A run's settings and the names every command agrees on.

A run is described by one flat config dict: DEFAULTS, then the chosen preset, then the
command line's values (`make_config`). The checkpoint stores it, so every later command
(evaluate, figures, complete) reads the run exactly as it was trained.
"""

from pathlib import Path

from tinynet.backend import gpu_unavailable_reason

from .cli import UsageError, require_finite, require_positive

# The paper's run (section 5.3): 500k iterations of batch 100 with Adam. `quick` is sized so
# that the whole command, evaluation included, takes at most 15 minutes on a 2-core CPU: one
# model of 2,500 iterations; on a GPU, where that takes seconds, three members of 4,000
# (QUICK_ON_GPU), the best recipe measured on the embedded digits (docs/training.md, "The recipe").
PRESETS = {
    "quick": {"iters": 2500, "batch_size": 100, "optimizer": "adam", "lr": 4e-3, "warmup": 500, "target_blend": 0.3,
              "members": 1},
    "paper": {"iters": 500_000, "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "warmup": 1000},
}
QUICK_ON_GPU = {"iters": 4000, "members": 3}
# Fewer training digits than this are few: the network learns their lower halves by heart
# (docs/training.md, "Schedule length and overfitting"). On more, the quick preset changes
# what fights that (docs/training.md, "On MNIST's training digits"; 45,000 digits): plain
# targets redraw the lower half as well as blended ones and save the neighbour search (21 s),
# dropout 0.1 denoises better than 0.25, and on a CPU 2,300 iterations keep the whole command,
# with its larger evaluation, within the time limit at the same lower half.
FEW_DIGITS = 10_000
QUICK_ON_MANY_DIGITS = {"target_blend": 0.0, "dropout": 0.1, "iters": 2300}
DEFAULTS = {
    "model": "cnn-lstm", "preset": "quick", "device": "auto", "noise": "sp", "noise_amount": None,
    "hidden": 128, "layers": 5, "dropout": 0.25, "literal_eq13": False, "l2": 1e-6, "clip": 1.0,
    "min_lr_ratio": 0.05, "seed": 0, "split_seed": 0, "test_fraction": 0.25, "official_split": False,
    "data": None, "eval_every": 250, "eval_digits": 500, "checkpoint_every": 500, "cuda_graph": True,
    "average_decay": 0.999, "members": 1, "target_blend": 0.0, "target_neighbours": 25,
    "on_many_digits": {},
}
# Config entries that must be positive integers.
POSITIVE_KEYS = ("iters", "batch_size", "hidden", "layers", "checkpoint_every", "members", "target_neighbours")

# The CNN-LSTM that ships with the package, an ensemble of two: each member's averaged
# weights, the config and the metrics (provenance: mnist_half/pretrained/README.md);
# `complete`, `evaluate` and `demo` use it when no --checkpoint is given.
PRETRAINED = Path(__file__).resolve().parent / "pretrained" / "cnn-lstm.npz"

# The files of a run folder.
CHECKPOINT = "checkpoint.npz"
LOG = "log.csv"
METRICS_FILE = "metrics.json"

# Config entries that decide which digits are test digits, and how they are corrupted.
SPLIT_KEYS = ("data", "official_split", "test_fraction", "split_seed")
NOISE_KEYS = ("noise", "noise_amount")

TEST_NOISE_SEED = 1  # the held-out digits' corruption is fixed, so that evaluations compare
INFERENCE_BATCH = 500  # digits per forward pass when nothing is trained (memory, not results, depends on it)


def make_config(preset, overrides):
    """DEFAULTS, then PRESETS[preset] (for `quick` on a GPU with QUICK_ON_GPU), then the
    `overrides` that are not None; checked by `validate`. For `quick`, "on_many_digits"
    holds what QUICK_ON_MANY_DIGITS changes that no override gave (not the length on a GPU):
    `settle_for_data` applies it once the training set's size is known."""
    config = {**DEFAULTS, **PRESETS[preset], "preset": preset}
    config.update({key: value for key, value in overrides.items() if value is not None})
    if preset == "quick":
        on_gpu = runs_on_gpu(config["device"])
        if on_gpu:
            config.update({key: value for key, value in QUICK_ON_GPU.items() if overrides.get(key) is None})
        config["on_many_digits"] = {key: value for key, value in QUICK_ON_MANY_DIGITS.items()
                                    if overrides.get(key) is None and not (on_gpu and key == "iters")}
    validate(config)
    return config


def runs_on_gpu(device):
    """Whether `--device` `device` trains on the GPU: gpu, or auto where CuPy finds one."""
    return device == "gpu" or (device == "auto" and gpu_unavailable_reason() is None)


def validate(config):
    """A UsageError naming the flag of the first value that a run cannot use."""
    require_finite(lr=config["lr"], target_blend=config["target_blend"], dropout=config["dropout"])
    require_positive(**{key: config[key] for key in POSITIVE_KEYS}, lr=config["lr"])
    if not 0 <= config["target_blend"] <= 1:
        raise UsageError(f"--target-blend must be in [0, 1], got {config['target_blend']}")
    if not 0 <= config["dropout"] < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {config['dropout']}")
    if config["seed"] < 0:
        raise UsageError(f"--seed must be 0 or more, got {config['seed']}")


def settle_for_data(config, train_digits):
    """The config for a training set of `train_digits` digits: with its "on_many_digits"
    applied when they are FEW_DIGITS or more, then emptied (what a checkpoint stores)."""
    many = config["on_many_digits"] if train_digits >= FEW_DIGITS else {}
    return {**config, **many, "on_many_digits": {}}


def check_fits(config, train_digits):
    """A UsageError when the run needs more training digits than the split's `train_digits`:
    for one batch, or for the neighbours of each digit's blended target."""
    if config["batch_size"] > train_digits:
        raise UsageError(f"--batch-size {config['batch_size']} is more than the {train_digits:,} training digits")
    if config["target_blend"] > 0 and config["target_neighbours"] >= train_digits:
        raise UsageError(f"--target-neighbours {config['target_neighbours']} needs more than that many training "
                         f"digits, the split has {train_digits:,} (lower it, or --target-blend 0)")


def saved_config(meta):
    """The config of a saved run: a checkpoint written before a key existed takes the key's default."""
    return {**DEFAULTS, **meta["config"]}
