"""Values too small to matter, set to zero where they would otherwise linger: the weights,
optimizer state and average after each update (tinynet.optim.update_parameters), and the
gradients that the LSTM cell's backward passes on (tinynet.functional.lstm.lstm_cell_backward).

On x86 CPUs an operation with a subnormal operand or result (below finfo.tiny, 1.2e-38 in
float32) takes a microcode assist, tens of times slower than a normal one. Two things in a
long training drift there:
- Under eq. (17)'s L2 term a weight that no data reaches (every weight of a dead ReLU
  channel of the encoder) only shrinks, and so do its optimizer state and its average; in a
  long CPU training half of conv2's weights got there, and conv2's forward took 250 ms
  instead of 8.
- A saturated gate's slope s (1 - s) is tiny, so the gate's gradient is too, and the cell
  state's gradient shrinks by the forget gate at every step back in time; in the same
  training 0.3 % of the gate gradients were subnormal, and they doubled the decoder's
  backward through their products with the weights (bench/RESULTS.md).

So every value of magnitude below sqrt(finfo.tiny) (float32: 2^-63, 1.1e-19) is set to
zero: the product of two values at or above that bound is a normal float, and a value
below it is some seventeen orders of magnitude under the weights and gradients that carry
the model, far beneath float32's resolution of any sum it enters beside them. GPUs compute
on subnormals at full speed, but their kernels flush alike, so both devices compute the
same.
"""

import numpy as np

from .backend import xp_of
from .dispatch import accelerated


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
