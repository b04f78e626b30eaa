"""Inverted dropout (the 25 % dropout of section 5.3).

In training each unit is kept with probability 1 - p and scaled by 1 / (1 - p), so the
expected activation is unchanged and evaluation is the identity.
"""


def dropout_forward(x, p, rng, train):
    """x: any shape -> y = x * mask, mask = keep / (1 - p) with keep ~ Bernoulli(1 - p).

    rng: a Generator of x's array module (tinynet.backend.make_rng). With train=False or
    p == 0 the input passes through and the cache is None.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not train or p == 0:
        return x, None
    mask = (rng.random(x.shape, dtype=x.dtype) >= p).astype(x.dtype)
    mask *= 1.0 / (1.0 - p)  # in place: keeps x's dtype
    return x * mask, mask


def dropout_backward(dy, mask):
    """dy -> dx = dy * mask, the mask the forward drew (identity when it was off)."""
    if mask is None:
        return dy, {}
    return dy * mask, {}
