"""Dropout layer (section 5.3): inverted dropout with a generator the layer owns."""

import numpy as np

from ..backend import xp_of
from ..functional.dropout import MaskSource, dropout_backward, dropout_forward
from .base import Layer


class Dropout(Layer):
    """Drops each unit with probability p in training (scaling the rest by 1 / (1 - p)).

    seed: an int, or a numpy Generator to draw one from (so one seeded Generator drives
    the run). Masks are drawn where the activations live (functional.dropout.MaskSource);
    moving to another module restarts the stream from the seed.
    """

    def __init__(self, p, seed):
        super().__init__()
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(2 ** 63))
        self.p = p
        self.masks = MaskSource(seed)

    def seed_dropout(self, seed):
        self.masks.reseed(seed)

    def forward(self, x, train=False):
        y, self.cache = dropout_forward(x, self.p, self.masks.generator(xp_of(x)), train)
        return y

    def backward(self, dy):
        dx, _ = dropout_backward(dy, self.cache)
        return dx
