"""A training run on disk: its data split, its run folder (checkpoint.npz, log.csv), and the
one way to turn its checkpoint back into a model."""

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinynet.optim import OPTIMIZERS

from .checkpoint import (
    DESCRIBED,
    CheckpointError,
    check_params,
    describe,
    load_checkpoint,
    missing_optimizer_state,
    save_checkpoint,
)
from .cli import UsageError
from .config import CHECKPOINT, LOG, NOISE_KEYS, SPLIT_KEYS, saved_config
from .data import load_mnist, split_dataset
from .files import write_text
from .models import MODEL_LABELS, MODELS, Ensemble, build_model

# The flags that --resume may change: where and how long a run goes on, not what it learns.
RESUME_MAY_CHANGE = ("iters", "checkpoint_every", "device", "cuda_graph")

FIGURE_ORDER = ("cnn-cnn", "cnn-lstm")  # compared runs come in Figure 7's column order


def load_split(config, progress=True):
    """(train, test) digits of the run's data source and seeded split (section 5.1)."""
    dataset = load_mnist(config["data"], progress=progress)
    return split_dataset(dataset, config["test_fraction"], config["split_seed"], config["official_split"])


def data_kind(source):
    """'embedded' or 'MNIST' for a dataset's `source`: a split of one is no split of the other."""
    return "embedded" if source.startswith("embedded") else "MNIST"


# --- the checkpoint --------------------------------------------------------------------------

def checkpoint_path(path):
    """The checkpoint file that `path` names: the file itself, or the one in a run folder."""
    path = Path(path)
    return path / CHECKPOINT if path.is_dir() else path


def load_run_checkpoint(path, group="model"):
    """(weights, optimizer_state, meta, config) of the training run saved at `path`
    (mnist_half.checkpoint.load_checkpoint); a checkpoint of anything else is a CheckpointError."""
    params, optimizer_state, meta = load_checkpoint(path, group)
    if meta.get("kind", "run") != "run":
        raise CheckpointError(f"{path}: holds a {meta['kind']}, not a training run")
    return params, optimizer_state, meta, saved_config(meta)


def run_model(path, config, input_grad=False):
    """The untrained model of a saved run's `config` (an Ensemble for several members): what
    its checkpoint's weights must fit. A config that builds no model is a CheckpointError.
    input_grad=True: its backward returns the gradient w.r.t. the input image too."""
    if config["model"] not in MODELS:
        raise CheckpointError(f"{path}: its config names the unknown model {config['model']!r} "
                              f"(known: {', '.join(MODELS)})")
    try:
        members = [build_model(config["model"], np.random.default_rng(0), config, 0.5, input_grad=input_grad)
                   for _ in range(config["members"])]
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: its config builds no model ({type(error).__name__}: {error})") from None
    return members[0] if len(members) == 1 else Ensemble(members)


def load_trained(path, xp, input_grad=False):
    """(model, meta) of the run saved at `path` (a checkpoint or its run folder): the model on
    array module `xp`, for inference, with the averaged weights when the run kept an average;
    a run of several members gives their Ensemble. A readable file that is no run's
    checkpoint, or whose weights are not those of its config's model, is a CheckpointError.
    input_grad=True: the model's backward returns the gradient w.r.t. the image too."""
    path = checkpoint_path(path)
    params, _, meta, config = load_run_checkpoint(path, "inference")
    model = run_model(path, config, input_grad)
    check_params(path, params, model.named_params(), describe(config))
    model.to(xp)
    model.load_params(params)
    return model, meta


def trained_for(meta):
    """How long a saved model trained, in words: 'iteration 50000', or for an exported
    Ensemble (export_for_inference) its members' 'iterations 50000 and 34000'."""
    runs = meta.get("member_runs")
    if not runs:
        return f"iteration {meta.get('iteration', '?')}"
    counts = [str(run["iteration"]) for run in runs]
    return f"iterations {', '.join(counts[:-1])} and {counts[-1]}"


# What the members of one exported Ensemble must share: what builds each network, and what
# decides the held-out digits and their corruption (so that its evaluation means one thing).
ENSEMBLE_SHARED = ("model", "hidden", "layers", "literal_eq13", "dropout", *SPLIT_KEYS, *NOISE_KEYS)


def export_for_inference(paths, out, provenance):
    """Write to `out` the checkpoint that inference needs: the averaged weights (what
    evaluation and completion use) as float32 of the run at `paths` (a run folder or its
    checkpoint), or of the Ensemble of the single-model runs that `paths` lists (their mean
    completion; they must agree on ENSEMBLE_SHARED); the config and iteration (an Ensemble's:
    its first member's, with "members" and each member's seed and iteration under
    "member_runs"), and `provenance` (a JSON-able dict: the command, the data, the metrics).
    No optimizer state, so it cannot be resumed. This is how the packaged model
    (config.PRETRAINED) is made."""
    paths = [checkpoint_path(path) for path in ([paths] if isinstance(paths, (str, Path)) else paths)]
    trained = [load_trained(path, np) for path in paths]
    config = saved_config(trained[0][1])
    kept = {key: trained[0][1][key] for key in ("iteration", "elapsed_s", "data_source") if key in trained[0][1]}
    if len(paths) > 1:
        member_runs = []
        for path, (_, meta) in zip(paths, trained):
            member = saved_config(meta)
            if member["members"] != 1:
                raise CheckpointError(f"{path}: a run of {member['members']} members; an exported ensemble "
                                      f"is made of single-model runs")
            differing = [key for key in ENSEMBLE_SHARED if member.get(key) != config.get(key)]
            if differing:
                raise CheckpointError(f"{path}: differs from {paths[0]} in {', '.join(differing)}; the members "
                                      f"of one ensemble must agree on {', '.join(ENSEMBLE_SHARED)}")
            member_runs.append({"seed": member["seed"], "iteration": meta.get("iteration")})
        config = {**config, "members": len(paths)}
        kept["member_runs"] = member_runs
    model = trained[0][0] if len(paths) == 1 else Ensemble([member for member, _ in trained])
    weights = {name: np.asarray(value, dtype=np.float32) for name, value in model.named_params().items()}
    save_checkpoint(out, weights, {}, {**kept, "config": config, "inference_only": True, "provenance": provenance})


def resume_config(path, config, given, reset_optimizer=False):
    """The config that continues the run saved at `path`: the run's own, with this command's
    device and, of the flags of RESUME_MAY_CHANGE, those typed (a flag left out keeps the
    run's value, not the preset's). `given`: the flags typed on the command
    line ({config key: value}); one outside RESUME_MAY_CHANGE that differs from the run's is
    a UsageError, and so is a checkpoint whose weights do not fit its config, or that lacks
    its optimizer's state (unless `reset_optimizer`: the optimizer then starts afresh)."""
    params, optimizer_state, _, saved = load_run_checkpoint(path)
    for key, value in given.items():
        if key not in RESUME_MAY_CHANGE and value != saved.get(key):
            flag = "--" + key.replace("_", "-")
            trained = "" if key in DESCRIBED else f", trained with {flag} {saved.get(key)}"
            raise UsageError(f"{path}: this checkpoint is {describe(saved)}{trained}; the command asked for "
                             f"{flag} {value}. --resume continues a run as it was trained: drop {flag}, or train "
                             f"a new run into another --out")
    check_params(path, params, run_model(path, saved).named_params(), describe(saved))
    slots = OPTIMIZERS[saved["optimizer"]].slots
    missing = missing_optimizer_state(optimizer_state, params, slots)
    if missing and not reset_optimizer:
        raise UsageError(f"{path}: lacks the {saved['optimizer']} optimizer's state ({len(missing)} entries, "
                         f"{missing[0]}, ...), so the run cannot continue exactly; add --reset-optimizer to "
                         f"continue it with the optimizer started afresh")
    changed = {key: config[key] for key in RESUME_MAY_CHANGE if key in given}
    return {**saved, "device": config["device"], **changed}  # the device: where this command runs


# --- the run folder --------------------------------------------------------------------------

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
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if (r.get("iteration") or "").isdigit()  # not a row cut short
                        and int(r["iteration"]) <= resume_iteration and None not in r.values()]
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, self.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        write_text(path, text.getvalue())

    def write(self, iteration, train_loss="", test_loss="", elapsed_s=0.0):
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.FIELDS).writerow(
                {"iteration": iteration, "train_loss": train_loss, "test_loss": test_loss,
                 "elapsed_s": f"{elapsed_s:.1f}"})


def read_log(path):
    """{'train': (iterations, losses), 'test': (iterations, losses)} from a run's log.csv,
    whose rows hold either a train_loss or a test_loss."""
    columns = {"train": "train_loss", "test": "test_loss"}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"iteration", *columns.values()} - set(reader.fieldnames or ())
            if missing:
                raise UsageError(f"{path}: lacks the column(s) {', '.join(sorted(missing))}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"{path}: not a readable log ({error})") from None
    series = {kind: ([], []) for kind in columns}
    for line, row in enumerate(rows, start=2):
        for kind, column in columns.items():
            if row.get(column):
                try:
                    iteration, loss = int(row["iteration"]), float(row[column])
                except (TypeError, ValueError):
                    raise UsageError(f"{path}, line {line}: iteration {row['iteration']!r}, "
                                     f"{column} {row[column]!r} are not numbers") from None
                series[kind][0].append(iteration)
                series[kind][1].append(loss)
    return {kind: (np.array(its, dtype=np.int64), np.array(losses)) for kind, (its, losses) in series.items()}


@dataclass(frozen=True)
class Run:
    """A finished (or interrupted) training run folder: its checkpoint's metadata and its log."""

    folder: Path
    meta: dict
    log: dict

    @classmethod
    def open(cls, folder):
        """The Run in `folder`; a missing folder, an unreadable checkpoint or log is an error."""
        folder = Path(folder)
        if not folder.is_dir():
            raise UsageError(f"run folder {folder} does not exist")
        for name in (CHECKPOINT, LOG):
            if not (folder / name).is_file():
                raise UsageError(f"run folder {folder} has no {name}")
        _, _, meta = load_checkpoint(folder / CHECKPOINT)
        model = meta.get("config", {}).get("model")
        if model not in MODEL_LABELS:
            raise UsageError(f"{folder / CHECKPOINT}: unknown model {model!r}")
        return cls(folder, meta, read_log(folder / LOG))

    @property
    def config(self):
        return self.meta["config"]

    @property
    def model(self):
        return self.config["model"]

    @property
    def label(self):
        return MODEL_LABELS[self.model]


def load_runs(runs):
    """Runs (folders or Run objects) to be compared, checked to hold at most one run per model
    and to share data, split and noise; in FIGURE_ORDER."""
    runs = [run if isinstance(run, Run) else Run.open(run) for run in runs]
    if not runs:
        raise UsageError("no runs given")
    by_model = {}
    for run in runs:
        if run.model in by_model:
            raise UsageError(f"{by_model[run.model].folder} and {run.folder} are both {run.label} runs: "
                             "give at most one run per model")
        by_model[run.model] = run
    first = runs[0]
    for run in runs[1:]:
        differ = [key for key in SPLIT_KEYS + NOISE_KEYS if run.config.get(key) != first.config.get(key)]
        if data_kind(run.meta.get("data_source", "")) != data_kind(first.meta.get("data_source", "")):
            differ.append("data source")
        if differ:
            raise UsageError(f"runs {first.folder} and {run.folder} differ in {', '.join(differ)}: "
                             "they must share the data split and noise to be compared")
    return [by_model[model] for model in FIGURE_ORDER if model in by_model]
