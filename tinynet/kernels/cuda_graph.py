"""One training step captured in a CUDA graph and replayed with a single launch.

A step of the CNN-LSTM is hundreds of small kernel launches; replaying them as one graph
removes the Python and launch overhead between them. Capture also proves that the step has
no hidden host-device synchronisation: one (float(), .item(), bool(array), cupy.asnumpy)
makes the capture fail.

The contract for `step_fn` (a function of no arguments):
- it reads only from arrays that stay at fixed device addresses: the parameters, the
  gradients, the optimizer state and static input buffers (`inputs`), which `launch`
  overwrites in place before each replay. Rebinding a name to a new array does not reach the
  graph, which keeps the addresses of the capture.
- whatever changes from step to step lives in device arrays, never in Python floats: a
  Python scalar passed to a kernel is frozen into the graph. For Adam this means the learning
  rate and the bias corrections (tinynet.kernels.cuda_fused.adam_update accepts 0-d device
  arrays for them), to be updated in place outside the graph before each launch.
- control flow in Python must not depend on values (it runs once, at capture), and random
  masks (dropout) must come from a generator that writes into a fixed buffer.
- its return value (e.g. the loss as a 0-d array) is captured too: `launch` returns the same
  arrays each time, overwritten by each replay.

The training loop would use it so (not wired into mnist_half/train.py yet):

    x_buf, y_buf = cupy.empty(x_shape, cupy.float32), cupy.empty(y_shape, cupy.float32)
    def step_fn():
        loss = model_forward_backward(x_buf, y_buf)   # writes into the model's grads
        adam_step_with_device_scalars()               # lr, bias corrections in device arrays
        return loss
    x_buf[...], y_buf[...] = first_batch             # the warm-up runs for real on it
    step = CapturedStep(step_fn, inputs=(x_buf, y_buf))
    for x, y in batches:
        update the device scalars (step count, bias corrections) in place
        loss = step.launch(x, y)
        if it % 500 == 0: print(float(loss))         # the only read-back

Memory: CuPy's memory pool keeps freed blocks per stream. The warm-up call runs on the
capture stream and leaves there every block the step needs, so the capture reuses them; the
temporaries the graph writes belong to that stream's free list afterwards. Only `launch` may
therefore run work on `self.stream`, and the CapturedStep must stay alive while its graph is
used.
"""

import cupy
import numpy as np


class CapturedStep:
    """Warm up `step_fn` once, capture one call of it on a non-default stream, replay with `launch`.

    step_fn: a function of no arguments that follows the contract of the module docstring.
    stream: the cupy.cuda.Stream to capture on; a new non-blocking stream by default (capture
        is impossible on the legacy default stream).
    inputs: the static device buffers that `launch` fills before each replay.
    Raises RuntimeError, saying why, when the capture fails; the caller then runs step_fn
    eagerly.
    """

    def __init__(self, step_fn, stream=None, inputs=()):
        self.step_fn = step_fn
        self.stream = cupy.cuda.Stream(non_blocking=True) if stream is None else stream
        self.inputs = tuple(inputs)
        self._follow(cupy.cuda.get_current_stream())
        with self.stream:
            # the warm-up compiles every kernel and allocates every buffer on this stream
            self.step_fn()
            self.stream.synchronize()
            self.stream.begin_capture()
            try:
                self.outputs = self.step_fn()
            except Exception as error:
                self._abandon_capture()
                raise RuntimeError(
                    f"CUDA graph capture failed while running step_fn ({type(error).__name__}: {error}); "
                    "it must not synchronise with the host (float(), .item(), bool(array), "
                    "cupy.asnumpy) nor use the legacy default stream. Run the step eagerly instead."
                ) from error
            try:
                self.graph = self.stream.end_capture()
            except Exception as error:
                raise RuntimeError(
                    f"CUDA graph capture was invalidated ({type(error).__name__}: {error}); "
                    "step_fn did something a graph cannot hold. Run the step eagerly instead."
                ) from error

    def _follow(self, stream):
        """Make the capture stream wait for the work queued so far on `stream`."""
        self.stream.wait_event(stream.record())

    def _abandon_capture(self):
        """End a failed capture so that the stream can be used again; its graph is discarded."""
        try:
            self.stream.end_capture()
        except Exception:  # an invalidated capture reports its failure here too
            pass

    def launch(self, *values):
        """Copy `values` into the static input buffers, replay the step, return its outputs.

        values: one array per buffer of `inputs` (NumPy or CuPy, same shape). The caller's
        current stream waits for the replay, so later work there sees its results.
        """
        if len(values) != len(self.inputs):
            raise ValueError(f"launch takes {len(self.inputs)} input arrays, got {len(values)}")
        caller = cupy.cuda.get_current_stream()
        self._follow(caller)  # inputs computed on the caller's stream are complete
        with self.stream:
            for buffer, value in zip(self.inputs, values):
                if isinstance(value, cupy.ndarray):
                    cupy.copyto(buffer, value)
                else:
                    buffer.set(np.ascontiguousarray(value, dtype=buffer.dtype), stream=self.stream)
            self.graph.launch(stream=self.stream)
        caller.wait_event(self.stream.record())
        return self.outputs
