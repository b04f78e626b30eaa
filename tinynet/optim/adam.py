"""Adam (Kingma & Ba): bias-corrected running means of the gradient and its square."""

import math

from ..dispatch import accelerated
from .base import Optimizer


class Adam(Optimizer):
    """m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    w <- w - lr * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps_hat), eps_hat = eps sqrt(1-b2^t).

    The last line is the paper's form of m_hat / (sqrt(v_hat) + eps), folded into one step size.
    """

    slots = ("m", "v")
    scalar_names = ("step", "eps_hat")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def step_scalars(self):
        correction2 = math.sqrt(1 - self.beta2**self.t)
        return {"step": self.lr * correction2 / (1 - self.beta1**self.t), "eps_hat": self.eps * correction2}

    def update(self, param, grad, state):
        m, v = state["m"], state["v"]
        step, eps_hat = self.scalars["step"], self.scalars["eps_hat"]
        adam_update(param, grad, m, v, self.beta1, self.beta2, step, eps_hat)


@accelerated
def adam_update(param, grad, m, v, beta1, beta2, step, eps_hat):
    """In place: m, v <- the running moments of the gradient; param -= step m / (sqrt(v) + eps_hat)."""
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * (grad * grad)
    param -= step * m / (v**0.5 + eps_hat)
