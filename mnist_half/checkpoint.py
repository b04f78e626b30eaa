"""Checkpoints: one `.npz` with flat keys ('model/encoder/conv1/W', 'optim/...', and, for a
training run, 'average/...': the averaged weights that evaluation uses) and a JSON
metadata entry, written atomically (mnist_half.files.atomic_output) so a crash never leaves
a half-written checkpoint.

Reading goes through mnist_half.files.load_npz (sizes checked before anything is
allocated, no pickles), then `load_checkpoint` checks what a checkpoint must be before any
caller sees it: metadata that is a JSON object of a format this version knows (a newer one
is refused, naming both), a run's `config` and `iteration`, and finite numbers in every
array. `check_params` compares the weights with those of the model a command builds, so a
checkpoint of another model or size is one line that says which.
"""

import json
import numbers
from pathlib import Path

import numpy as np

from tinynet.backend import to_numpy

from .files import FileError, atomic_output, load_npz

META_KEY = "__meta__"
FORMAT = 1  # the metadata layout this version writes and the newest it reads
GROUPS = ("model", "optim", "average")
RUN_SIZE_KEYS = ("hidden", "layers", "members")  # positive integers in a run's config


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or used; the message names the file."""


def save_checkpoint(path, model_params, optimizer_state, meta, average=None):
    """Atomically write model parameters, optimizer state, JSON-able metadata and, if given,
    the weight average's state (tinynet.optim.WeightAverage.state_dict) to `path`."""
    arrays = {f"model/{k}": to_numpy(v) for k, v in model_params.items()}
    arrays.update({f"optim/{k}": np.asarray(to_numpy(v)) for k, v in optimizer_state.items()})
    arrays.update({f"average/{k}": np.asarray(to_numpy(v)) for k, v in (average or {}).items()})
    arrays[META_KEY] = np.frombuffer(json.dumps({"format": FORMAT, **meta}).encode("utf-8"), dtype=np.uint8)
    with atomic_output(path) as f:
        np.savez(f, **arrays)


def load_checkpoint(path, group="model"):
    """Return (weights, optimizer_state, meta) as NumPy arrays and a dict, checked (module
    docstring); any fault is a CheckpointError naming `path`.

    group="model": the weights training left (what resuming needs); "average": the weight
    average's state (empty if the run kept none); "inference": the averaged weights when
    the run kept them, else the model's (what evaluation and completion use).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        arrays = load_npz(path)
    except FileError as error:
        detail = str(error).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: not a readable mnist-half checkpoint ({detail})") from None
    meta = _read_meta(arrays.pop(META_KEY, None), path)
    unknown = sorted(key for key in arrays if key.split("/", 1)[0] not in GROUPS)
    if unknown:
        raise CheckpointError(f"{path}: not an mnist-half checkpoint (unknown entry {unknown[0]})")
    non_finite = [key for key, value in arrays.items()
                  if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(value).all()]
    if non_finite:
        raise CheckpointError(f"{path}: {len(non_finite)} of its {len(arrays)} arrays hold NaN or infinite values "
                              f"({non_finite[0]}, ...): the weights are unusable; use an earlier checkpoint")
    groups = {name: {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(name + "/")} for name in GROUPS}
    average = {k: v for k, v in groups["average"].items() if k.rsplit("/", 1)[-1] != "t"}  # not t, member{k}/t
    if average and groups["model"]:
        check_params(path, groups["model"], average, "its own weight average")
    if group == "inference":
        weights = average or groups["model"]
    else:
        weights = groups[group]
    if not weights and group != "average":
        raise CheckpointError(f"{path}: holds no {group} weights")
    return weights, groups["optim"], meta


def _read_meta(raw, path):
    """The metadata dict of a checkpoint, checked: JSON object, known format, and for a
    training run (every kind but 'classifier') a config and an iteration."""
    if raw is None:
        raise CheckpointError(f"{path}: not an mnist-half checkpoint (no {META_KEY} entry)")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path}: its metadata is not JSON ({error})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata is a {type(meta).__name__}, expected a JSON object")
    version = meta.get("format", FORMAT)
    if not _is_int(version) or version < 1:
        raise CheckpointError(f"{path}: unknown checkpoint format {version!r}")
    if version > FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {version} was written by a newer mnist-half; this "
                              f"version reads format {FORMAT} (update mnist-half)")
    if meta.get("kind", "run") == "run":
        _check_run_meta(meta, path)
    return meta


def _check_run_meta(meta, path):
    config = meta.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: its metadata has no config object, so the run cannot be rebuilt")
    iteration = meta.get("iteration")
    if not _is_int(iteration) or iteration < 0:
        raise CheckpointError(f"{path}: its metadata has no iteration count (found {iteration!r})")
    if not isinstance(config.get("model"), str):
        raise CheckpointError(f"{path}: its config names no model (found {config.get('model')!r})")
    for key in RUN_SIZE_KEYS:
        if key in config and (not _is_int(config[key]) or config[key] < 1):
            raise CheckpointError(f"{path}: its config has {key} {config[key]!r}, expected a positive integer")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


DESCRIBED = ("model", "hidden", "layers", "members")  # the config entries that `describe` names


def describe(config):
    """A run's model and size in words: 'a cnn-lstm with hidden 128, 5 layers, 3 members'."""
    parts = []
    if config.get("model") == "cnn-lstm":
        parts += [f"hidden {config.get('hidden')}", f"{config.get('layers')} layers"]
    members = config.get("members", 1)
    parts.append(f"{members} member{'s' * (members != 1)}")
    return f"a {config.get('model')} with {', '.join(parts)}"


def check_params(path, found, expected, what):
    """A CheckpointError unless `found` (name -> array) has exactly the names and shapes of
    `expected` (name -> array or shape), the parameters of `what` (e.g. describe(config)),
    and holds floating-point numbers."""
    def shape(value):
        return tuple(getattr(value, "shape", value))

    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [name for name in expected if name in found and shape(found[name]) != shape(expected[name])]
    not_float = [name for name in expected if name in found and not np.issubdtype(found[name].dtype, np.floating)]
    if not (missing or extra or wrong or not_float):
        return
    if not_float:
        name = not_float[0]
        detail = f"{name} holds {found[name].dtype}, expected floating-point numbers"
    elif wrong:
        name = wrong[0]
        detail = f"{name} has shape {shape(found[name])}, expected {shape(expected[name])}"
    elif missing:
        detail = f"it lacks {len(missing)} of them ({', '.join(missing[:3])}{', ...' * (len(missing) > 3)})"
    else:
        detail = f"it has {len(extra)} unknown ones ({', '.join(extra[:3])}{', ...' * (len(extra) > 3)})"
    raise CheckpointError(f"{path}: its weights are not those of {what}: {detail}")


def missing_optimizer_state(optimizer_state, params, slots):
    """The keys '{name}/{slot}' that `optimizer_state` lacks for the parameters `params` of an
    optimizer whose state per parameter is `slots` (tinynet.optim: Adam's m and v)."""
    return [f"{name}/{slot}" for name in params for slot in slots if f"{name}/{slot}" not in optimizer_state]
