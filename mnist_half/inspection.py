"""One digit through a trained model, with everything a reader may want to look at: the
completion, and for one chosen output row the decoder's internals at that step and the
gradients that tinynet's own backward pass sends from that row to the input image and to
the thought vector. `python -m mnist_half.demo` shows them on a page (mnist_half.demo_server).

For the CNN-LSTM (eqs. 3, 4), at decoder step t (output row t) and for every layer l:

    v                                   (7)   the thought vector, read by every step
    i_t, f_t, g_t, o_t                  (8)-(11)  the gates (g is the new state C~_t)
    c_t = f_t * c_{t-1} + i_t * g_t     (12)
    h_t = o_t * tanh(c_t)               (13)
    y_t = sigmoid(h^{L-1}_t W_out + b)  (14)  the output row

The internals are read from the forward's cache, which is the reference decoder's
(tinynet.functional.decoder: per step and layer the activated gates, c_{t-1} and tanh(c_t));
c_t and h_t are eqs. (12) and (13) on those cached values. The model therefore runs on the
reference (`tinynet.dispatch.reference_only`), on the CPU: for a single digit that is also
the fastest path.

The gradient is of one scalar of row t: the sum of its 28 pixels, d(sum_j y_tj), or where the
original digit is known the row's RMSE against it (eq. 15 over that row). Backpropagation
through time (tinynet.functional.decoder.decoder_backward) then carries it back over rows
t, t-1, ..., 0 to every input row x_t and to v, and the encoder's backward (eqs. 5-7) carries
v's share on to the image: the image gradient is the sum of both paths.

The CNN-CNN baseline (Figure 1) has no thought vector and no recurrence: all 28 rows come at
once from transposed convolutions, and only the image gradient applies.
"""

import threading
from dataclasses import dataclass

import numpy as np

from tinynet.dispatch import reference_only
from tinynet.functional.decoder import BOTTOM_INPUTS
from tinynet.functional.losses import rmse_loss
from tinynet.shapes import gate_blocks

from .cli import UsageError
from .config import PRETRAINED
from .corruption import NOISES, blank_lower_half, corrupt
from .data import DataError, load_embedded, load_mnist, split_dataset
from .models import CNNLSTM, IMAGE_SIZE, MODEL_LABELS, networks
from .runs import checkpoint_path, data_kind, load_trained, trained_for

NO_NOISE = "none"
NOISE_NAMES = {NO_NOISE: "none", "sp": "salt and pepper", "gauss": "Gaussian"}

# Each quantity shown, its equation and the section of docs/equations.md that derives it (the
# anchors GitHub gives those headings; tests/mnist_half/test_demo.py checks them against the file).
EQUATIONS = {
    "v": (7, "eq-7-the-fully-connected-layer-the-thought-vector"),
    "i": (8, "eq-8-the-input-gate"),
    "f": (9, "eq-9-the-forget-gate"),
    "o": (10, "eq-10-the-output-gate"),
    "g": (11, "eq-11-the-new-state-tilde-c_t"),
    "c": (12, "eq-12-the-cell-state"),
    "h": (13, "eq-13-the-hidden-state"),
    "y": (14, "eq-14-the-output-row-and-the-whole-decoder-through-time"),
    "loss": (15, "eq-15-the-loss-rmse"),
    "bptt": (None, "bptt-expanded-why-gradients-vanish"),
}


@dataclass
class Inspection:
    """What `inspect_digit` returns for one image and row t.

    completion: (28, 28) the model's output; row: t; objective: "row_sum" or "row_rmse";
    objective_value: that scalar; grad_image: (28, 28), its gradient w.r.t. the input image;
    v, grad_v: (V,) the thought vector and the gradient w.r.t. it, None for the CNN-CNN;
    layers: per decoder layer {"i", "f", "g", "o", "c", "h": (H,)} at step t, None for the CNN-CNN;
    members: how many networks the output is the mean of (v and layers are the first one's).
    """

    completion: np.ndarray
    row: int
    objective: str
    objective_value: float
    grad_image: np.ndarray
    v: np.ndarray | None
    grad_v: np.ndarray | None
    layers: list | None
    members: int = 1


def load_for_inspection(path=PRETRAINED):
    """(model, meta) of the run saved at `path` on the CPU, its backward returning the image's
    gradient (mnist_half.runs.load_trained); a bad file is a CheckpointError."""
    return load_trained(path, np, input_grad=True)


def model_name(model):
    """'cnn-lstm' or 'cnn-cnn' for a model or an Ensemble of them."""
    first = networks(model)[0]
    return "cnn-lstm" if isinstance(first, CNNLSTM) else "cnn-cnn"


def check_image(image, name="image"):
    """`image` as a (28, 28) float32 array, or a UsageError saying what is wrong with it: a
    nested list (JSON) or array of 28 rows of 28 finite numbers in [0, 1]."""
    try:
        x = np.asarray(image, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected {IMAGE_SIZE} rows of {IMAGE_SIZE} numbers") from None
    if x.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise UsageError(f"{name}: expected shape ({IMAGE_SIZE}, {IMAGE_SIZE}), got {x.shape}")
    if not np.isfinite(x).all():
        raise UsageError(f"{name}: holds NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise UsageError(f"{name}: values must lie in [0, 1], found {x.min():g}..{x.max():g}")
    return x.astype(np.float32)


def check_row(row):
    """`row` as an int in 0..27, or a UsageError."""
    if isinstance(row, bool) or not isinstance(row, (int, np.integer)) or not 0 <= row < IMAGE_SIZE:
        raise UsageError(f"row: expected an integer in 0..{IMAGE_SIZE - 1}, got {row!r}")
    return int(row)


def noise_amount(noise, config):
    """The amount of `noise` that the run trained with (its --noise amount where it trained with
    that noise, else the default of mnist_half.corruption.NOISES: 20 % salt and pepper, sigma 0.3)."""
    if config.get("noise") == noise and config.get("noise_amount") is not None:
        return config["noise_amount"]
    return NOISES[noise][1]


def corrupt_digit(image, noise, seed, config):
    """Figure 5 on one image (28, 28): the lower half blanked, then `noise` ('none', 'sp' or
    'gauss') at the run's level, drawn from a Generator seeded by `seed`."""
    if noise not in NOISE_NAMES:
        raise UsageError(f"noise: expected one of {', '.join(NOISE_NAMES)}, got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise UsageError(f"seed: expected an integer in 0..2**32-1, got {seed!r}")
    x = check_image(image)
    if noise == NO_NOISE:
        return blank_lower_half(x)
    rng = np.random.default_rng(int(seed))
    return corrupt(x[None], rng, noise, noise_amount(noise, config))[0]


def decoder_step(decoder, t):
    """Per layer, {i, f, g, o, c, h} (each (N, H)) of step t of the decoder's last forward,
    read from its cache (the reference's layout, tinynet.functional.decoder.decoder_forward)."""
    caches, _, _ = decoder.cache
    step_caches, _, _ = caches[t]
    layers = []
    for _, _, (gates, c_prev, tanh_c, literal_eq13) in step_caches:
        i, f, g, o = gate_blocks(gates)
        layers.append({"i": i, "f": f, "g": g, "o": o,
                       "c": f * c_prev + i * g,  # eq. (12)
                       "h": (i if literal_eq13 else o) * tanh_c})  # eq. (13)
    return layers


def thought_vector(decoder):
    """v (N, V) of the decoder's last forward: an input of every step's bottom layer (eqs. 8-11)."""
    caches, _, _ = decoder.cache
    bottom_inputs = caches[0][0][0][0]
    return bottom_inputs[BOTTOM_INPUTS.index("Wv")]


def row_objective(y, row, target):
    """(value, dy): the scalar of output row `row` whose gradient is shown, and its gradient
    w.r.t. the whole output y (N, 28, 28): zero except on that row. Without a target the sum
    of the row's pixels (dy = 1 on the row); with one, the row's RMSE against it (eq. 15)."""
    dy = np.zeros_like(y)
    if target is None:
        dy[:, row] = 1
        return float(y[:, row].sum()), dy
    loss, dy[:, row] = rmse_loss(y[:, row], target[None, row])
    return float(loss), dy


def inspect_digit(model, image, row, target=None):
    """Complete `image` (28, 28) with `model` (a CNNLSTM, a CNNCNN or an Ensemble of them,
    built with input_grad=True) and inspect output row `row`: an Inspection (module
    docstring). target (28, 28): the original digit, for the row's RMSE; None for the sum of
    the row. An Ensemble's output is its members' mean, so each member's backward gets 1/M of
    the row's gradient and the image gradient is their sum; v and the internals shown are
    the first member's."""
    x = check_image(image)[None]
    row = check_row(row)
    target = None if target is None else check_image(target, "target")
    members = networks(model)
    v = grad_v = layers = None
    with reference_only():
        y = sum(member.forward(x, train=False) for member in members) / len(members)  # as Ensemble.forward
        value, dy = row_objective(y, row, target)
        dy_member = dy / len(members)
        grad_image = np.zeros_like(x)
        for k, member in enumerate(members):
            if isinstance(member, CNNLSTM):
                if k == 0:
                    v = thought_vector(member.decoder)[0].copy()
                    layers = [{name: state[0].copy() for name, state in layer.items()}
                              for layer in decoder_step(member.decoder, row)]
                dx, dv = member.backward_with_thought(dy_member)
                if k == 0:
                    grad_v = dv[0]
            else:
                dx = member.backward(dy_member)
            grad_image += dx
    return Inspection(completion=y[0], row=row, objective="row_sum" if target is None else "row_rmse",
                      objective_value=value, grad_image=grad_image[0], v=v, grad_v=grad_v, layers=layers,
                      members=len(members))


class HeldOutDigits:
    """The digits that the run at hand did not train on, loaded on first use: its own test
    split (section 5.1) of its own data where that is at hand (its MNIST folder, the cache,
    or the embedded digits it trained on); otherwise the test split of the embedded digits,
    which come from MNIST's training set, so a model trained on MNIST may have seen some of
    them (`seen_in_training` says so). Nothing is downloaded."""

    def __init__(self, config, meta):
        self.config, self.meta = config, meta
        self._lock = threading.Lock()
        self._test = None
        self.seen_in_training = False

    def _load(self):
        with self._lock:
            if self._test is None:
                try:
                    dataset = load_mnist(self.config.get("data"), download=False, progress=False)
                except DataError:
                    dataset = load_embedded()
                trained_on = self.meta.get("data_source", dataset.source)
                self.seen_in_training = data_kind(dataset.source) != data_kind(trained_on)
                official = self.config.get("official_split", False) and dataset.official_test is not None
                _, self._test = split_dataset(dataset, self.config.get("test_fraction", 0.25),
                                              self.config.get("split_seed", 0), official)
            return self._test

    def __len__(self):
        return len(self._load())

    @property
    def source(self):
        return self._load().source

    def digit(self, index):
        """(image (28, 28) float32 in [0, 1], label) of held-out digit `index`, or a UsageError."""
        test = self._load()
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(test):
            raise UsageError(f"index: expected an integer in 0..{len(test) - 1}, got {index!r}")
        return test.images[index], int(test.labels[index])


def describe_model(model, meta, checkpoint):
    """A JSON-able summary of the model for the page: its name, label and sizes."""
    config = meta["config"]
    name = model_name(model)
    shipped = checkpoint_path(checkpoint).resolve() == PRETRAINED
    return {"model": name, "label": MODEL_LABELS[name],
            "checkpoint": "the model that ships with the package" if shipped else str(checkpoint),
            "iteration": meta.get("iteration"), "trained_for": trained_for(meta),
            "layers": config.get("layers") if name == "cnn-lstm" else None,
            "hidden": config.get("hidden") if name == "cnn-lstm" else None,
            "literal_eq13": bool(config.get("literal_eq13", False)), "members": config.get("members", 1),
            "noise": {key: {"name": label, "amount": None if key == NO_NOISE else noise_amount(key, config)}
                      for key, label in NOISE_NAMES.items()}}

