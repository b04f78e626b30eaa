"""The max-pool and LSTM-cell twins, written once for both devices.

Each adapts a kernel module that offers maxpool2d, maxpool2d_backward, lstm_cell_forward
and lstm_cell_backward with the same arguments (tinynet.accel.cpu.numba_kernels on the
CPU, tinynet.accel.gpu.fused on the GPU) to its reference's signature
(tinynet.functional.pool, tinynet.functional.lstm); cpu/ops.py and gpu/ops.py each bind
one set. The caches have the references' layout.
"""


class CellAndPoolTwins:
    """The twins over `kernels`, allocating with array module `xp` (NumPy or CuPy)."""

    def __init__(self, kernels, xp):
        self.kernels, self.xp = kernels, xp

    def maxpool2d_forward(self, x, size=2, stride=2):
        """tinynet.functional.pool.maxpool2d_forward."""
        y, winner = self.kernels.maxpool2d(x, size, stride)
        return y, (x.shape, winner, size, stride)

    def maxpool2d_backward(self, dy, cache):
        """tinynet.functional.pool.maxpool2d_backward."""
        x_shape, winner, size, stride = cache
        return self.kernels.maxpool2d_backward(dy, winner, x_shape, size, stride), {}

    def lstm_cell_forward_over_input(self, a, c_prev, literal_eq13=False):
        """lstm_cell_forward whose activated gates overwrite `a`, which becomes part of the cache."""
        h, c, tanh_c = self.kernels.lstm_cell_forward(a, c_prev, literal_eq13)
        return h, c, (a, c_prev, tanh_c, literal_eq13)

    def lstm_cell_forward(self, a, c_prev, literal_eq13=False):
        """tinynet.functional.lstm.lstm_cell_forward."""
        return self.lstm_cell_forward_over_input(a.copy(), c_prev, literal_eq13)

    def lstm_cell_backward_into(self, dh, dc, cache, da_out):
        """lstm_cell_backward writing da into da_out."""
        gates, c_prev, tanh_c, literal_eq13 = cache
        return self.kernels.lstm_cell_backward(dh, dc, gates, c_prev, tanh_c, literal_eq13, da_out)

    def lstm_cell_backward(self, dh, dc, cache):
        """tinynet.functional.lstm.lstm_cell_backward."""
        return self.lstm_cell_backward_into(dh, dc, cache, self.xp.empty(cache[0].shape, dtype=cache[0].dtype))
