"""Thin layer objects that own `params` and `grads` and call `tinynet.functional`."""

from .base import Layer, Sequential
from .conv import Conv2D, ConvTranspose2D, Flatten, MaxPool2D
from .dense import Dense, ReLU, Sigmoid, Tanh
from .dropout import Dropout
from .recurrent import RNN, LSTMDecoder

__all__ = ["Layer", "Sequential", "Dense", "ReLU", "Sigmoid", "Tanh",
           "Conv2D", "ConvTranspose2D", "MaxPool2D", "Flatten", "Dropout",
           "RNN", "LSTMDecoder"]
