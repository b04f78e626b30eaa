"""Layers of the convolutional encoder (Table 1) and of the CNN-CNN baseline's decoder
(Figure 1): Conv2D (eq. 5), MaxPool2D (eq. 6), ConvTranspose2D and Flatten."""

import numpy as np

from .. import init
from ..functional.conv import conv2d_backward, conv2d_forward, conv_transpose2d_backward, conv_transpose2d_forward
from ..functional.pool import maxpool2d_backward, maxpool2d_forward
from .base import Layer


class Conv2D(Layer):
    """Eq. (5) before its activation. W: (out_channels, in_channels, k, k), b: (out_channels,).

    pad='same' pads (k - 1) / 2 on every side (odd k), keeping H and W at stride 1.
    input_grad=False skips the gradient w.r.t. the input (backward returns None): for a first
    layer, whose input is data.
    """

    weight_keys = ("W",)

    def __init__(self, in_channels, out_channels, kernel_size, rng, stride=1, pad="same", dtype=np.float32,
                 input_grad=True):
        super().__init__()
        self.input_grad = input_grad
        if pad == "same":
            if kernel_size % 2 == 0:
                raise ValueError(f"pad='same' needs an odd kernel_size, got {kernel_size}")
            pad = (kernel_size - 1) // 2
        self.stride, self.pad = stride, pad
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.params = {
            "W": init.he_normal(rng, shape, in_channels * kernel_size * kernel_size, dtype),
            "b": init.zeros((out_channels,), dtype),
        }

    def forward(self, x, train=False):
        y, self.cache = conv2d_forward(x, self.params["W"], self.params["b"], self.stride, self.pad)
        return y

    def backward(self, dy):
        dx, self.grads = conv2d_backward(dy, self.cache, self.input_grad)
        return dx


class ConvTranspose2D(Layer):
    """Transposed convolution ("deconvolution"). W: (in_channels, out_channels, k, k) like PyTorch.

    H_out = (H - 1) * stride - 2 pad + k + output_padding; k=5, stride=2, pad=2,
    output_padding=1 doubles H and W (7 -> 14 -> 28), mirroring a 5x5 'same' conv and 2x2 pool.
    """

    weight_keys = ("W",)

    def __init__(self, in_channels, out_channels, kernel_size, rng, stride=2, pad=0, output_padding=0,
                 dtype=np.float32):
        super().__init__()
        self.stride, self.pad, self.output_padding = stride, pad, output_padding
        shape = (in_channels, out_channels, kernel_size, kernel_size)
        # Each output pixel sums about in_channels * k^2 / stride^2 inputs: that is its fan-in.
        fan_in = in_channels * kernel_size * kernel_size / stride ** 2
        self.params = {
            "W": init.he_normal(rng, shape, fan_in, dtype),
            "b": init.zeros((out_channels,), dtype),
        }

    def forward(self, x, train=False):
        y, self.cache = conv_transpose2d_forward(x, self.params["W"], self.params["b"],
                                                 self.stride, self.pad, self.output_padding)
        return y

    def backward(self, dy):
        dx, self.grads = conv_transpose2d_backward(dy, self.cache)
        return dx


class MaxPool2D(Layer):
    """Eq. (6): the maximum of each size x size window, windows `stride` apart."""

    def __init__(self, size=2, stride=2):
        super().__init__()
        self.size, self.stride = size, stride

    def forward(self, x, train=False):
        y, self.cache = maxpool2d_forward(x, self.size, self.stride)
        return y

    def backward(self, dy):
        dx, _ = maxpool2d_backward(dy, self.cache)
        return dx


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), the feature map y that eq. (7) multiplies; backward reshapes back."""

    def forward(self, x, train=False):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self.x_shape)
