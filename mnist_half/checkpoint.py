"""Checkpoints: one `.npz` with flat keys ('model/encoder/conv1/W', 'optim/...', and, for a
training run, 'average/...': the averaged weights that evaluation uses) and a JSON
metadata entry, written to a temporary file and renamed so a crash never leaves a
half-written checkpoint. Loaded with allow_pickle=False."""

import json
import zipfile
import os
import tempfile
from pathlib import Path

import numpy as np

from tinynet.backend import to_numpy

META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read; the message names the file."""


def save_checkpoint(path, model_params, optimizer_state, meta, average=None):
    """Atomically write model parameters, optimizer state, JSON-able metadata and, if given,
    the weight average's state (tinynet.optim.WeightAverage.state_dict) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"model/{k}": to_numpy(v) for k, v in model_params.items()}
    arrays.update({f"optim/{k}": np.asarray(to_numpy(v)) for k, v in optimizer_state.items()})
    arrays.update({f"average/{k}": np.asarray(to_numpy(v)) for k, v in (average or {}).items()})
    arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path, group="model"):
    """Return (weights, optimizer_state, meta) as NumPy arrays and a dict.

    group="model": the weights training left (what resuming needs); "average": the weight
    average's state (empty if the run kept none); "inference": the averaged weights when
    the run kept them, else the model's (what evaluation and completion use).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path}: not a readable mnist-half checkpoint ({error})") from None
    groups = {name: {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(name + "/")}
              for name in ("model", "optim", "average")}
    if group == "inference":
        average = {k: v for k, v in groups["average"].items() if k.rsplit("/", 1)[-1] != "t"}  # not t, member{k}/t
        weights = average or groups["model"]
    else:
        weights = groups[group]
    return weights, groups["optim"], meta
