"""Weight initialisation on the host, from one seeded numpy Generator.

Parameters are created here as NumPy arrays and moved to the device afterwards, so a
CPU run and a GPU run with the same seed start from identical weights.
"""

import numpy as np


def glorot_uniform(rng, shape, fan_in, fan_out, dtype=np.float32):
    """U(-a, a) with a = sqrt(6 / (fan_in + fan_out)): keeps tanh/sigmoid units' variance."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(rng, shape, fan_in, dtype=np.float32):
    """N(0, 2 / fan_in): keeps ReLU units' variance."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def zeros(shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)
