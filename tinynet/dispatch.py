"""The one seam between the reference and its optional accelerated twins.

The reference (tinynet.functional, tinynet.optim) is plain NumPy/CuPy. A reference function
decorated with `@accelerated` may be served by a *twin*: a function of tinynet.accel with
the same signature and the same result (up to float rounding, tested in tests/tinynet), only
faster. tinynet.accel.TWINS lists every decorated function by name ("module.function") with
its twins, each as (accepts, "accel submodule:function"). A call runs the first twin whose
`accepts(*args)` (the positional arguments) is true and that does not decline (a twin returns NotImplemented for inputs
it cannot serve, e.g. a view its kernel cannot read); otherwise the reference body runs.

The twins are optional: this module finds tinynet.accel by name, on first use. Without the
package (deleted, or hidden from the import system) every call runs the reference, so
`tinynet.functional` alone runs both models. Environment: TINYNET_NUMPY=1 (read once, at
import) runs the reference everywhere; tests switch at run time with `reference_only()`.
The reference's caches have the same layout as their twins', so a forward's cache may be
handed to either backward; where they cannot (the buffered decoder), the twin's backward
declines every cache but its own.
"""

import contextlib
import functools
import importlib
import os

ENABLED = os.environ.get("TINYNET_NUMPY", "") != "1"
ACCEL_PACKAGE = "tinynet.accel"

_table = None  # tinynet.accel.TWINS once loaded, {} where the package is absent
_loaded_twins = {}  # "submodule:function" -> the function


def twin_table():
    """{reference name: [(accepts, "submodule:function"), ...]}: tinynet.accel.TWINS, or {}
    where tinynet.accel cannot be imported."""
    global _table
    if _table is None:
        try:
            _table = importlib.import_module(ACCEL_PACKAGE).TWINS
        except ImportError:
            _table = {}
    return _table


def load_twin(spec):
    """The function named by "submodule:function" inside tinynet.accel (imported on first use)."""
    twin = _loaded_twins.get(spec)
    if twin is None:
        module_name, function_name = spec.split(":")
        module = importlib.import_module(f"{ACCEL_PACKAGE}.{module_name}")
        twin = _loaded_twins[spec] = getattr(module, function_name)
    return twin


def reference_name(function):
    """'lstm.lstm_cell_forward' for tinynet.functional.lstm.lstm_cell_forward: the key of TWINS."""
    return f"{function.__module__.rsplit('.', 1)[-1]}.{function.__qualname__}"


def accelerated(reference):
    """Let the twins listed for `reference` in tinynet.accel.TWINS serve its calls (see the
    module). `f.reference` is always the plain function."""
    name = reference_name(reference)
    twins = None  # this function's entries of TWINS, looked up on its first accelerated call

    @functools.wraps(reference)
    def call(*args, **kwargs):
        nonlocal twins
        if ENABLED:
            if twins is None:
                twins = twin_table().get(name, ())
            for accepts, spec in twins:
                if accepts(*args):
                    out = load_twin(spec)(*args, **kwargs)
                    if out is not NotImplemented:
                        return out
        return reference(*args, **kwargs)

    call.reference = reference
    call.reference_name = name
    return call


@contextlib.contextmanager
def reference_only():
    """Within the block every @accelerated function runs its reference body."""
    global ENABLED
    saved, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = saved


class RunAtOnce:
    """An executor that runs each piece of work as it is handed over (join() has nothing to wait for)."""

    def run(self, fn):
        fn()

    def join(self):
        pass


@accelerated
def side_stream(like):
    """An executor (run(fn), join()) for work that later work does not need, such as the
    decoder's weight gradients during the encoder's backward: where the GPU twins serve
    `like`, a second CUDA stream (tinynet.accel.gpu.streams), else RunAtOnce()."""
    return RunAtOnce()
