"""Dense layer (eq. 7 without its activation) and the element-wise activation layers."""

import numpy as np

from .. import init
from ..functional import activations as act
from ..functional.dense import dense_backward, dense_forward
from .base import Layer


class Dense(Layer):
    """y = x W + b, W: (in_features, out_features), b: (out_features,)."""

    weight_keys = ("W",)

    def __init__(self, in_features, out_features, rng, dtype=np.float32):
        super().__init__()
        self.params = {
            "W": init.glorot_uniform(rng, (in_features, out_features), in_features, out_features, dtype),
            "b": init.zeros((out_features,), dtype),
        }

    def forward(self, x, train=False):
        y, self.cache = dense_forward(x, self.params["W"], self.params["b"])
        return y

    def backward(self, dy):
        dx, self.grads = dense_backward(dy, self.cache)
        return dx


class _Activation(Layer):
    forward_fn = backward_fn = None

    def forward(self, x, train=False):
        y, self.cache = type(self).forward_fn(x)
        return y

    def backward(self, dy):
        dx, _ = type(self).backward_fn(dy, self.cache)
        return dx


class ReLU(_Activation):
    """Eq. (16)."""

    forward_fn, backward_fn = act.relu_forward, act.relu_backward


class Tanh(_Activation):
    forward_fn, backward_fn = act.tanh_forward, act.tanh_backward


class Sigmoid(_Activation):
    forward_fn, backward_fn = act.sigmoid_forward, act.sigmoid_backward
