"""Plain stochastic gradient descent: w <- w - lr g."""

from .base import Optimizer


class SGD(Optimizer):
    def __init__(self, lr=0.01):
        super().__init__(lr)

    def update(self, param, grad, state):
        param -= self.scalars["lr"] * grad
