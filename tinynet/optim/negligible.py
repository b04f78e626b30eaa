"""Values too small to matter, set to zero after each update (tinynet.optim.update_parameters).

Under eq. (17)'s L2 term a weight that no data reaches (every weight of a dead ReLU channel
of the encoder) only shrinks, geometrically, and so do its optimizer state and its average.
On the way to zero they pass through the subnormal floats (below finfo.tiny, 1.2e-38 in
float32) and the range above them where their products with activations or gradients are
subnormal. On x86 CPUs an operation with a subnormal operand or result takes a microcode
assist, tens of times slower than a normal one: in a long CPU training half of conv2's
weights got there, and conv2's forward took 250 ms instead of 8 (bench/RESULTS.md).

So every value of magnitude below sqrt(finfo.tiny) (float32: 2^-63, 1.1e-19) is set to
zero: the product of two values at or above that bound is a normal float, and a weight
below it is some seventeen orders of magnitude under the weights that carry the model, far
beneath float32's resolution of any sum it enters beside them. GPUs compute on subnormals
at full speed, but the GPU's fused update (tinynet.accel.gpu.update) flushes alike, so both
devices compute the same update.
"""

import numpy as np

from ..backend import xp_of
from ..dispatch import accelerated


def negligible_below(dtype):
    """The bound under which flush_negligible zeroes a value of `dtype`: sqrt(finfo.tiny), exactly
    (float32 2^-63, float64 2^-511)."""
    return float(np.sqrt(np.finfo(dtype).tiny))


@accelerated
def flush_negligible(array):
    """In place: every value of `array` of magnitude below negligible_below(its dtype) becomes 0
    (NaN and infinity stay, so a diverged run is still seen)."""
    xp = xp_of(array)
    xp.copyto(array, 0, where=xp.abs(array) < negligible_below(array.dtype))
