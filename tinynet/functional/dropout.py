"""Inverted dropout (the 25 % dropout of section 5.3).

In training each unit is kept with probability 1 - p and scaled by 1 / (1 - p), so the
expected activation is unchanged and evaluation is the identity.
"""


def dropout_mask(rng, shape, p, dtype):
    """Inverted-dropout mask: 0 with probability p, else 1 / (1 - p).

    The uniform draws are float32 whatever `dtype` is, so a float32 model and its float64
    twin with the same seed drop the same units.
    """
    mask = (rng.random(shape, dtype="float32") >= p).astype(dtype)
    mask *= 1.0 / (1.0 - p)  # in place: keeps the dtype
    return mask


def dropout_forward(x, p, rng, train):
    """x: any shape -> y = x * mask, mask = keep / (1 - p) with keep ~ Bernoulli(1 - p).

    rng: a Generator of x's array module (tinynet.backend.make_rng). With train=False or
    p == 0 the input passes through and the cache is None.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not train or p == 0:
        return x, None
    mask = dropout_mask(rng, x.shape, p, x.dtype)
    return x * mask, mask


def dropout_backward(dy, mask):
    """dy -> dx = dy * mask, the mask the forward drew (identity when it was off)."""
    if mask is None:
        return dy, {}
    return dy * mask, {}
