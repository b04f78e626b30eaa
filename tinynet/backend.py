"""The CPU/GPU switch: NumPy on the CPU, CuPy on the GPU, chosen once at the edge.

Inside the maths, code asks the arrays which module they live in (`xp_of`), so one
code path serves both devices. CuPy is imported under a guard: without it everything
still works on the CPU.
"""

import numpy as np

try:  # CuPy is optional: the `gpu` extra brings it.
    import cupy as _cupy
except Exception as _error:  # ImportError, or a CUDA library that fails to load
    _cupy = None
    _CUPY_IMPORT_ERROR = f"{type(_error).__name__}: {_error}"
else:
    _CUPY_IMPORT_ERROR = None

DEVICES = ("auto", "cpu", "gpu")


class DeviceError(RuntimeError):
    """The requested device cannot be used; the message says why and what to do."""


def gpu_unavailable_reason():
    """None when CuPy and a CUDA device are usable, else a one-line reason."""
    if _cupy is None:
        return f"CuPy is not installed or failed to import ({_CUPY_IMPORT_ERROR})"
    try:
        count = _cupy.cuda.runtime.getDeviceCount()
    except Exception as error:
        return f"CuPy found no usable CUDA device ({type(error).__name__}: {error})"
    if count == 0:
        return "CuPy found no CUDA device"
    return None


def get_xp(device="auto"):
    """Return the array module for `device` ('auto', 'cpu' or 'gpu').

    'auto' means the GPU when CuPy and a CUDA device are present, else the CPU.
    Asking for 'gpu' where there is none raises DeviceError with a one-line reason.
    """
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return np
    reason = gpu_unavailable_reason()
    if reason is None:
        return _cupy
    if device == "auto":
        return np
    raise DeviceError(
        f"--device gpu was asked for, but {reason}. "
        "Install the GPU extra (pip install -e '.[gpu]') on a machine with a CUDA GPU, "
        "or use --device cpu."
    )


def device_name(xp):
    """'gpu' for CuPy, 'cpu' for NumPy."""
    return "cpu" if xp is np else "gpu"


def xp_of(*arrays):
    """The array module (numpy or cupy) that the given arrays live in."""
    if _cupy is not None:
        return _cupy.get_array_module(*arrays)
    return np


def is_gpu_array(x):
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def to_numpy(x):
    """A NumPy copy (or view) of `x`, wherever it lives."""
    if is_gpu_array(x):
        return _cupy.asnumpy(x)
    return np.asarray(x)


def to_device(x, xp):
    """`x` as an array of module `xp` (a no-op when it already lives there)."""
    if xp is np:
        return to_numpy(x)
    return xp.asarray(x)
