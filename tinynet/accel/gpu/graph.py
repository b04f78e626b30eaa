"""One training step captured in a CUDA graph and replayed with a single launch.

A step of the CNN-LSTM is several hundred small kernel launches (the decoder alone: 6 per
image row each way, one after another); replaying them as one graph removes the Python and
launch overhead between them. Capture also proves that the step has no hidden host-device
synchronisation: one (float(), .item(), bool(array), cupy.asnumpy) makes the capture fail.

The contract for `step_fn` (a function of no arguments):
- it reads only from arrays that stay at fixed device addresses: the parameters, the
  optimizer state, its scalar buffer and static input buffers (`inputs`), which `launch`
  overwrites in place before each step. Rebinding a name to a new array does not reach
  the graph, which keeps the addresses of the capture.
- whatever changes from step to step lives in device arrays, never in Python floats: a
  Python scalar passed to a kernel is frozen into the graph. Adam's learning rate and bias
  corrections live in a device array (tinynet.optim.Optimizer.keep_scalars_on_device),
  dropout's seed too (tinynet.accel.gpu.fused.CounterRandom); both are updated outside
  the graph, before each launch.
- control flow in Python must not depend on values (it runs once, at capture).
- its return value (e.g. the loss as a 0-d array) is captured too: `launch` returns the same
  arrays each time, overwritten by each replay.

Memory: CuPy's memory pool keeps freed blocks per stream. Every call runs on this object's
own stream: the warm-up calls leave in the pool every block that a step needs (the second
one with the first one's results still alive, as at capture), so the capture takes its
memory from there; the temporaries the graph writes belong to that stream's free list
afterwards. Only `launch` may therefore run work on `self.stream`, and the CapturedStep must
stay alive while its graph is used.
"""

import sys

import cupy
import numpy as np

from . import blas


class CapturedStep:
    """Run `step_fn` eagerly for `warmup` launches, then capture it once and replay the graph.

    Every `launch` is one real step: it fills the input buffers, then runs or replays
    `step_fn` on a private non-blocking stream (capture is impossible on the legacy default
    stream), ordered after the caller's stream and before its later work.
    step_fn: a function of no arguments that follows the contract of the module docstring.
    inputs: the static device buffers that `launch` fills before each step.
    If the capture fails, the reason goes to stderr and the steps run eagerly from then on
    (`self.failure` keeps it).
    """

    def __init__(self, step_fn, inputs=(), warmup=2):
        self.step_fn = step_fn
        self.inputs = tuple(inputs)
        self.warmup = warmup
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.launches = 0
        self.graph, self.failure, self.outputs = None, None, None

    def launch(self, *values):
        """Copy `values` into the input buffers, run one step, return its outputs.

        values: one array per buffer of `inputs` (NumPy or CuPy, same shape).
        """
        if len(values) != len(self.inputs):
            raise ValueError(f"launch takes {len(self.inputs)} input arrays, got {len(values)}")
        caller = cupy.cuda.get_current_stream()
        self.stream.wait_event(caller.record())  # inputs and scalars written there are complete
        with self.stream:
            for buffer, value in zip(self.inputs, values):
                if isinstance(value, cupy.ndarray):
                    cupy.copyto(buffer, value)
                else:
                    buffer.set(np.ascontiguousarray(value, dtype=buffer.dtype), stream=self.stream)
            if self.graph is None and self.failure is None and self.launches >= self.warmup:
                self._capture()
            if self.graph is not None:
                self.graph.launch(stream=self.stream)
            else:
                self.outputs = self.step_fn()
        caller.wait_event(self.stream.record())
        self.launches += 1
        return self.outputs

    @property
    def captured(self):
        return self.graph is not None

    def _capture(self):
        """Record one call of step_fn into self.graph (nothing runs), or note why it failed."""
        blas.prepare()  # cuBLAS's library and handle, loaded and made before the capture
        self.stream.synchronize()
        self.stream.begin_capture()
        try:
            outputs = self.step_fn()
        except Exception as error:
            self._abandon_capture()
            return self._fail(f"{type(error).__name__} while capturing: {error}")
        try:
            self.graph = self.stream.end_capture()
        except Exception as error:
            return self._fail(f"the capture was invalidated ({type(error).__name__}: {error})")
        self.outputs = outputs

    def _abandon_capture(self):
        """End a failed capture so that the stream can be used again; its graph is discarded."""
        try:
            self.stream.end_capture()
        except Exception:  # an invalidated capture reports its failure here too
            pass

    def _fail(self, reason):
        self.failure = (f"CUDA graph capture failed: {reason}. The step must not synchronise with the "
                        "host (float(), .item(), bool(array), cupy.asnumpy); running it eagerly instead.")
        print(f"tinynet: {self.failure}", file=sys.stderr)
