"""Thin layer objects that own `params` and `grads` and call `tinynet.functional`."""

from .base import Layer, Sequential
from .dense import Dense, ReLU, Sigmoid, Tanh

__all__ = ["Layer", "Sequential", "Dense", "ReLU", "Sigmoid", "Tanh"]
