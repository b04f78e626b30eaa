"""Dropout layer (section 5.3): inverted dropout with a generator the layer owns."""

import numpy as np

from ..backend import make_rng, xp_of
from ..functional.dropout import dropout_backward, dropout_forward
from .base import Layer


class Dropout(Layer):
    """Drops each unit with probability p in training (scaling the rest by 1 / (1 - p)).

    seed: an int, or a numpy Generator to draw one from (so one seeded Generator drives
    the run). The mask generator is created on first use for the array module of the
    input, so masks are drawn where the activations live; moving to another module
    restarts the stream from the seed.
    """

    def __init__(self, p, seed):
        super().__init__()
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(2 ** 63))
        self.p = p
        self.seed_dropout(seed)

    def seed_dropout(self, seed):
        self.seed = seed
        self.rng, self.rng_xp = None, None

    def forward(self, x, train=False):
        xp = xp_of(x)
        if self.rng_xp is not xp:
            self.rng, self.rng_xp = make_rng(xp, self.seed), xp
        y, self.cache = dropout_forward(x, self.p, self.rng, train)
        return y

    def backward(self, dy):
        dx, _ = dropout_backward(dy, self.cache)
        return dx
