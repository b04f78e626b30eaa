"""Losses: RMSE (eq. 15, with the square the paper's formula lacks), MSE, the L2 penalty
(eq. 17), and the softmax cross-entropy of the evaluation's digit classifier. Each returns
`(loss, dloss/dinput)`; the loss is a 0-d array of the input's module, so nothing is read
back to the host."""

from ..backend import xp_of
from ..dispatch import accelerated


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
    penalty = sum(xp_of(w).sum(w * w) for w in weights.values()) * lam
    return penalty, {name: (2 * lam) * w for name, w in weights.items()}


@accelerated
def add_l2_gradients(grads, weights, lam):
    """grads[name] += 2 lam w for each weight, in place: eq. (17)'s gradient alone (a training
    step needs no penalty value, and summing the squares of a million weights is a pass over
    them that the step can skip)."""
    for name, w in weights.items():
        grads[name] += (2 * lam) * w


def softmax_cross_entropy(logits, labels):
    """mean_n -log softmax(logits_n)[labels_n]; gradient (softmax - onehot(labels)) / N.

    logits: (N, K) floats; labels: (N,) integers in 0..K-1 of the same array module.
    Shifting each row by its maximum keeps exp() from overflowing (log-sum-exp trick).
    """
    xp = xp_of(logits)
    N = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
    rows = xp.arange(N)
    loss = -log_probs[rows, labels].mean()
    dlogits = xp.exp(log_probs)
    dlogits[rows, labels] -= 1
    dlogits /= N
    return loss, dlogits
