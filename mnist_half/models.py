"""The paper's CNN-LSTM encoder-decoder with direct attention (Figure 3, Table 1) and the
CNN-CNN baseline (Figure 1). Both map a corrupted image batch (N, 28, 28) to a cleaned
one (N, 28, 28) in [0, 1]; `complete_images` runs one on a set of images."""

import numpy as np
from tqdm import tqdm

from tinynet.backend import to_numpy
from tinynet.dispatch import side_stream
from tinynet.layers import (
    Conv2D,
    ConvTranspose2D,
    Dense,
    Dropout,
    Flatten,
    Layer,
    LSTMDecoder,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)

from .config import INFERENCE_BATCH

IMAGE_SIZE = 28
POOLED_SIZE = IMAGE_SIZE // 4  # the side of the encoder's feature maps after two 2x2 max pools: 7
ENCODER_CHANNELS = 64
MODEL_LABELS = {"cnn-lstm": "CNN-LSTM", "cnn-cnn": "CNN-CNN"}
MEAN_INTENSITY_CLIP = 1e-3  # keeps the output bias's logit finite for an all-black or all-white training set
DROPOUT_SAMPLES_SEED = 0  # the masks of Monte Carlo dropout (--samples), fixed so that a completion repeats


def conv_encoder(rng, dtype, input_grad):
    """Table 1 up to MaxPool 2: 1@28x28 -> 32@28x28 -> 32@14x14 -> 64@14x14 -> 64@7x7 (eqs. 5, 6, 16).

    Training never needs the gradient w.r.t. the image (it is data): input_grad=False skips it.
    Each ReLU comes after its max pool rather than before: the two commute (max of ReLUs =
    ReLU of the max, and both pass the gradient to the same pixel), so this is Table 1's
    function and gradient with a quarter of the pixels through the ReLU.
    """
    return [
        ("conv1", Conv2D(1, 32, 5, rng, pad="same", dtype=dtype, input_grad=input_grad)),
        ("pool1", MaxPool2D(2, 2)),
        ("relu1", ReLU()),
        ("conv2", Conv2D(32, ENCODER_CHANNELS, 5, rng, pad="same", dtype=dtype)),
        ("pool2", MaxPool2D(2, 2)),
        ("relu2", ReLU()),
    ]


def logit(p):
    return float(np.log(p / (1 - p)))


class CNNLSTM(Layer):
    """Eq. (3): v = f_encoder(image); eq. (4): image_cleaned = f_decoder(v, image).

    The encoder ends in the fully connected thought vector v = tanh(W^v y + b) (eq. 7);
    the decoder is a multi-layer LSTM over the 28 rows whose bottom layer reads row x_t
    of the corrupted image, v and its own previous output row y_{t-1} (eqs. 8-14).
    backward returns the gradient w.r.t. the image only with input_grad=True.
    """

    def __init__(self, rng, hidden=128, layers=5, thought=100, dropout=0.25,
                 literal_eq13=False, output_bias=0.0, dtype=np.float32, input_grad=False):
        super().__init__()
        self.encoder = Sequential(conv_encoder(rng, dtype, input_grad) + [
            ("flatten", Flatten()),
            ("fc", Dense(ENCODER_CHANNELS * POOLED_SIZE**2, thought, rng, dtype=dtype)),
            ("tanh", Tanh()),
        ])
        self.decoder = LSTMDecoder(IMAGE_SIZE, thought, hidden, layers, rng=rng, dropout=dropout,
                                   literal_eq13=literal_eq13, dtype=dtype)
        self.decoder.params["out/b"][...] = output_bias

    def children(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def forward(self, x, train=False):
        v = self.encoder.forward(x[:, None], train=train)
        return self.decoder.forward(x, v, train=train)

    def backward(self, dy):
        """The image reaches the output twice: through v (eq. 3) and row by row (eq. 4)."""
        return self.backward_with_thought(dy)[0]

    def backward_with_thought(self, dy):
        """(dx, dv): backward's gradient w.r.t. the image (None without input_grad) and the
        gradient w.r.t. the thought vector v (N, V), summed over the 28 steps that read it.

        The decoder's weight gradients do not feed the encoder's backward: on the GPU they
        run beside it, on a second stream (tinynet.dispatch.side_stream).
        """
        side = side_stream(dy)
        dx_rows, dv = self.decoder.backward_through_time(dy, side)
        dx = self.encoder.backward(dv)
        side.join()
        return (None if dx is None else dx[:, 0] + dx_rows), dv


class CNNCNN(Sequential):
    """Figure 1: the same two conv layers, then symmetric transposed convolutions
    64@7x7 -> 32@14x14 -> 1@28x28 and a sigmoid. backward returns the gradient w.r.t. the
    image only with input_grad=True."""

    def __init__(self, rng, dropout=0.25, output_bias=0.0, dtype=np.float32, input_grad=False):
        deconv2 = ConvTranspose2D(32, 1, 5, rng, stride=2, pad=2, output_padding=1, dtype=dtype)
        deconv2.params["b"][...] = output_bias
        super().__init__(conv_encoder(rng, dtype, input_grad) + [
            ("dropout", Dropout(dropout, rng)),
            ("deconv1", ConvTranspose2D(ENCODER_CHANNELS, 32, 5, rng, stride=2, pad=2, output_padding=1, dtype=dtype)),
            ("relu3", ReLU()),
            ("deconv2", deconv2),
            ("sigmoid", Sigmoid()),
        ])

    def forward(self, x, train=False):
        return super().forward(x[:, None], train=train)[:, 0]

    def backward(self, dy):
        dx = super().backward(dy[:, None])
        return None if dx is None else dx[:, 0]


MODELS = {"cnn-lstm": CNNLSTM, "cnn-cnn": CNNCNN}


class Ensemble(Layer):
    """The mean of the completions of independently trained models (`--members`;
    docs/training.md, "Ensembles, Monte Carlo dropout and snapshots"). Each member is the
    model of Table 1 (or Figure 1) with its own weights; a redrawn lower half is uncertain
    and each member commits to its own guess, so their mean is nearer the truth in RMSE
    than any one of them. Params are 'member{k}/...'. Inference only: training trains each
    member on its own loss."""

    def __init__(self, members):
        super().__init__()
        self.members = {f"member{k}": member for k, member in enumerate(members)}

    def children(self):
        return self.members

    def forward(self, x, train=False):
        return sum(member.forward(x, train=train) for member in self.members.values()) / len(self.members)


def networks(model):
    """The networks whose mean `model` completes with: an Ensemble's members, or the model itself."""
    return list(model.members.values()) if isinstance(model, Ensemble) else [model]


def build_model(name, rng, config, mean_intensity, dtype=np.float32, input_grad=False):
    """The model `name` with its output bias at logit(mean pixel intensity), so its first
    outputs already match the average image instead of 0.5 grey (docs/training.md).
    input_grad=True makes backward return the gradient w.r.t. the input image too."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    bias = logit(float(np.clip(mean_intensity, MEAN_INTENSITY_CLIP, 1 - MEAN_INTENSITY_CLIP)))
    if name == "cnn-lstm":
        return CNNLSTM(rng, hidden=config["hidden"], layers=config["layers"], dropout=config["dropout"],
                       literal_eq13=config.get("literal_eq13", False), output_bias=bias, dtype=dtype,
                       input_grad=input_grad)
    return CNNCNN(rng, dropout=config["dropout"], output_bias=bias, dtype=dtype, input_grad=input_grad)


def complete_images(model, images, xp, batch_size=INFERENCE_BATCH, samples=1, progress=False):
    """The model's completions (N, 28, 28) float32 in [0, 1] of `images` (N, 28, 28) float32,
    fed as they are, `batch_size` at a time, on array module `xp`.

    samples > 1: the mean of that many passes with dropout on (Monte Carlo dropout), the
    masks drawn from DROPOUT_SAMPLES_SEED.
    """
    if samples > 1:
        model.seed_dropout(DROPOUT_SAMPLES_SEED)
    out = np.empty(images.shape, dtype=np.float32)
    for start in tqdm(range(0, len(images), batch_size), desc="network", unit="batch", disable=not progress,
                      leave=False, dynamic_ncols=True):
        batch = xp.asarray(images[start:start + batch_size])
        if samples == 1:
            completed = model.forward(batch, train=False)
        else:
            completed = sum(model.forward(batch, train=True) for _ in range(samples)) / samples
        out[start:start + len(batch)] = to_numpy(completed)
    return out
