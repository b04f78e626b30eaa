"""Adadelta (Zeiler): step sizes from running averages of squared gradients and updates."""

from .base import Optimizer


class Adadelta(Optimizer):
    """E[g^2] <- rho E[g^2] + (1-rho) g^2
    dw = -sqrt(E[dw^2] + eps) / sqrt(E[g^2] + eps) * g
    E[dw^2] <- rho E[dw^2] + (1-rho) dw^2;   w <- w + lr dw
    """

    slots = ("square_avg", "delta_avg")

    def __init__(self, lr=1.0, rho=0.95, eps=1e-6):
        super().__init__(lr)
        self.rho, self.eps = rho, eps

    def update(self, param, grad, state):
        square_avg, delta_avg = state["square_avg"], state["delta_avg"]
        square_avg *= self.rho
        square_avg += (1 - self.rho) * (grad * grad)
        delta = ((delta_avg + self.eps) / (square_avg + self.eps)) ** 0.5 * grad
        delta_avg *= self.rho
        delta_avg += (1 - self.rho) * (delta * delta)
        param -= self.scalars["lr"] * delta
