"""Losses: RMSE (eq. 15, with the square the paper's formula lacks), MSE, and the
L2 penalty (eq. 17). Each returns `(loss, dloss/dinput)`; the loss is a 0-d array of
the input's module, so nothing is read back to the host."""

from ..backend import xp_of


def mse_loss(y_hat, y):
    """mean((y_hat - y)^2); gradient 2 (y_hat - y) / n."""
    diff = y_hat - y
    loss = xp_of(diff).mean(diff * diff)
    return loss, diff * (2 / diff.size)


def rmse_loss(y_hat, y, eps=1e-12):
    """Eq. (15): sqrt(mean((y_hat - y)^2)); gradient (y_hat - y) / (n * loss).

    `eps` keeps the gradient finite when the prediction is exact.
    """
    diff = y_hat - y
    xp = xp_of(diff)
    loss = xp.sqrt(xp.mean(diff * diff))
    return loss, diff / (diff.size * (loss + eps))


def l2_penalty(weights, lam):
    """Eq. (17): lam * sum_i w_i^2 over the given weights (a dict name -> array).

    Returns (penalty, {name: 2 lam w}). Callers pass weights only, never biases.
    """
    grads = {name: (2 * lam) * w for name, w in weights.items()}
    penalty = sum(xp_of(w).sum(w * w) for w in weights.values()) * lam
    return penalty, grads
