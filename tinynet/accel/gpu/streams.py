"""Two streams: work that the next work does not need runs beside it on the GPU.

The decoder's weight gradients (a product per weight over all 28 steps) do not feed the
encoder's backward that follows the decoder's sweep back through time; on two streams
they run beside it. `SideStream.run(fn)` forks a side stream from the current one (an
event: the side stream starts after everything enqueued so far) and enqueues fn() there;
the caller goes on enqueueing on its own stream; `join()` makes that stream wait for the
side stream. Inside a CUDA graph capture the forks and the join become the graph's edges,
and both branches are captured.

Two rules keep this safe. Products on the side stream use a cuBLAS handle of their own
(accel.gpu.blas keeps one per stream): where that is not possible, fn() runs in place,
on the current stream. And whatever fn() reads must stay referenced until the join: CuPy's
memory pool hands a freed block to the next allocation of the stream that allocated it,
which would then overwrite it while the side stream still reads it (fn's owner keeps its
inputs, as the decoder keeps its backward sweep's arrays until its next backward).
"""

import functools

import cupy

from . import blas


@functools.lru_cache(maxsize=None)
def _side_stream(device_id):
    with cupy.cuda.Device(device_id):
        return cupy.cuda.Stream(non_blocking=True)


class SideStream:
    """Work enqueued by run() on the device's side stream; join() ends it (see the module)."""

    def __init__(self):
        self.origin = cupy.cuda.get_current_stream()
        self.stream = _side_stream(cupy.cuda.Device().id) if blas.prepare() else None

    def run(self, fn):
        if self.stream is None:
            return fn()
        self.stream.wait_event(self.origin.record())
        with self.stream:
            blas.prepare()  # the side stream's handle, made on the first (eager) call
            fn()

    def join(self):
        if self.stream is not None:
            self.origin.wait_event(self.stream.record())
