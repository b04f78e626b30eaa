"""Inverted dropout (the 25 % dropout of section 5.3).

In training each unit is kept with probability 1 - p and scaled by 1 / (1 - p), so the
expected activation is unchanged and evaluation is the identity.
"""

import numpy as np

from ..dispatch import accelerated


@accelerated
def make_rng(xp, seed):
    """A random generator of array module `xp`, seeded with `seed` (used for dropout masks):
    `xp.random.default_rng(seed)`. The GPU's twin is a counter-based generator whose seed
    lives in device memory and restarts in place (tinynet.accel.gpu.fused.CounterRandom).
    """
    return xp.random.default_rng(seed)


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

    rng: a Generator of x's array module (make_rng). With train=False or
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


class MaskSource:
    """The randomness of one layer's dropout: restarted from a seed (so a resumed run
    redraws the same masks), drawn on the module of the activations.

    Restarting reseeds at once, outside whatever runs next: on the GPU the generator's seed
    lives in device memory, so a training step captured in a CUDA graph draws fresh masks
    at every replay after `reseed`. On the CPU the draws come from a numpy Generator, or,
    with `counter_on_cpu`, from CounterGenerator: the GPU's own numbers, bit for bit.
    """

    def __init__(self, seed, counter_on_cpu=False):
        self.seed, self.counter_on_cpu = seed, counter_on_cpu
        self.xp, self._rng = None, None

    def reseed(self, seed):
        self.seed = seed
        if hasattr(self._rng, "reseed"):
            self._rng.reseed(seed)  # in place
        elif self._rng is not None:
            self._rng = make_rng(self.xp, seed)

    def generator(self, xp):
        """The generator for arrays of module `xp` (made from the seed on first use)."""
        if self.xp is not xp:
            self.xp = xp
            self._rng = CounterGenerator(self.seed) if xp is np and self.counter_on_cpu else make_rng(xp, self.seed)
        return self._rng


class CounterGenerator:
    """Counter-based uniforms on the CPU: the NumPy twin of the GPU's CounterRandom
    (tinynet.accel.gpu.fused), draw for draw."""

    def __init__(self, seed):
        self.reseed(seed)

    def reseed(self, seed):
        self.seed, self.draws = seed, 0

    def random(self, shape, dtype="float32"):
        u = counter_uniform(self.seed, self.draws, shape).astype(dtype, copy=False)
        self.draws += 1
        return u


_GOLDEN = 0x9E3779B9


def _mix32(x):
    """The 'lowbias32' integer hash (C. Wellons) on uint32 arrays."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def counter_uniform(seed, draw, shape):
    """Float32 uniforms in [0, 1): a hash of (seed, draw number, element index).

    The reference twin of the GPU's CounterRandom (tinynet.accel.gpu.fused), which
    computes the same numbers in one kernel: key = mix(seed + golden (draw + 1)),
    u_i = (mix(mix(i ^ key) + key) >> 8) / 2^24.
    """
    key = _mix32(np.array([(seed + _GOLDEN * (draw + 1)) & 0xFFFFFFFF], dtype=np.uint32))
    index = np.arange(int(np.prod(shape)), dtype=np.uint32)
    bits = _mix32(_mix32(index ^ key) + key)
    return ((bits >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)).reshape(shape)
