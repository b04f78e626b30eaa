"""cuBLAS's matrix product, the same call eagerly, inside a CUDA graph capture
(tinynet.accel.gpu.graph) and on two streams at once (tinynet.accel.gpu.streams).

CuPy refuses every cuBLAS call while a stream is being captured ("calling cuBLAS API during
stream capture is currently unsupported", CuPy 13 and 14: its binding checks the stream).
cuBLAS itself supports capture, and from CUDA 12.2 on it takes its workspace stream-ordered,
so a captured product neither allocates outside the graph nor grows with each capture.
This module therefore calls cuBLAS's C API directly (ctypes, on the library CuPy has
loaded), with a handle of its own per stream: a handle's workspace must not serve two
streams whose products may run at the same time. Where that is not possible (an older
CUDA, ROCm, no library found) `gemm` returns None and the caller uses CuPy's product, or
inside a capture tinynet's own GEMM kernel.
"""

import ctypes
import functools

import cupy

_MIN_CUDA = 12020  # cuBLAS allocates its workspace stream-ordered from CUDA 12.2
_OP_N, _OP_T = 0, 1
_GEMM = {cupy.dtype(cupy.float32): ("cublasSgemm_v2", ctypes.c_float),
         cupy.dtype(cupy.float64): ("cublasDgemm_v2", ctypes.c_double)}


def _loaded_cublas_path():
    """The path of the cuBLAS library mapped into this process, after CuPy has loaded it."""
    cupy.cuda.device.get_cublas_handle()  # makes CuPy load cuBLAS (outside any capture)
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "/libcublas.so" in path:
                return path
    return None


def prepare():
    """Load the library and make the current stream's handle, outside any capture (both
    allocate); True when `gemm` will serve. CapturedStep calls it before it captures."""
    return _library() is not None and _current_handle() is not None


@functools.lru_cache(maxsize=None)
def _library():
    """ctypes cuBLAS, or None where this module cannot serve (see the module docstring)."""
    runtime = cupy.cuda.runtime
    if runtime.is_hip or runtime.runtimeGetVersion() < _MIN_CUDA:
        return None
    try:
        path = _loaded_cublas_path()
        return None if path is None else ctypes.CDLL(path)
    except Exception:  # whatever stops it, the GEMM kernel serves instead
        return None


@functools.lru_cache(maxsize=None)
def _handle(device_id, stream_ptr):
    """A cuBLAS handle of this module's own for the device and stream (default modes: host
    scalars), bound to that stream."""
    handle = ctypes.c_void_p()
    with cupy.cuda.Device(device_id):
        status = _library().cublasCreate_v2(ctypes.byref(handle))
    if status == 0:
        status = _library().cublasSetStream_v2(handle, ctypes.c_void_p(stream_ptr))
    return handle if status == 0 else None


def _current_handle():
    return _handle(cupy.cuda.Device().id, cupy.cuda.get_current_stream().ptr)


def _column_major(x):
    """(operation, leading dimension) under which cuBLAS reads x (rows, cols) as x^T in column-
    major order, or None when x is neither row- nor column-contiguous."""
    rows, cols = x.shape
    row_stride, col_stride = (s // x.itemsize for s in x.strides)
    if col_stride == 1 or cols == 1:
        ld = max(row_stride, cols, 1) if rows == 1 else row_stride
        return (_OP_N, ld) if ld >= max(cols, 1) else None
    if row_stride == 1 or rows == 1:
        ld = max(col_stride, rows, 1) if cols == 1 else col_stride
        return (_OP_T, ld) if ld >= max(rows, 1) else None
    return None


def gemm(a, b):
    """a @ b (2-D, one float dtype, K >= 1) through cuBLAS on the current stream -> a new
    C-contiguous array; None where cuBLAS cannot be called this way.

    Row-major C = A B is column-major C^T = B^T A^T: cuBLAS gets (B, A) in that order.
    """
    library = _library()
    handle = None if library is None else _current_handle()
    if handle is None:
        return None
    layouts = [_column_major(x) for x in (a, b)]
    if None in layouts:
        a, b = cupy.ascontiguousarray(a), cupy.ascontiguousarray(b)
        layouts = [_column_major(x) for x in (a, b)]
    (op_a, lda), (op_b, ldb) = layouts
    M, K = a.shape
    N = b.shape[1]
    out = cupy.empty((M, N), dtype=a.dtype)
    name, scalar = _GEMM[a.dtype]
    one, zero = scalar(1), scalar(0)
    status = getattr(library, name)(
        handle, op_b, op_a, N, M, K, ctypes.byref(one), ctypes.c_void_p(b.data.ptr), ldb,
        ctypes.c_void_p(a.data.ptr), lda, ctypes.byref(zero), ctypes.c_void_p(out.data.ptr), N)
    if status != 0:
        raise RuntimeError(f"cuBLAS {name} failed with status {status} for shapes {a.shape} @ {b.shape}")
    return out
