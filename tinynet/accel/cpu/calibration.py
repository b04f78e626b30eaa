"""Whether tinynet's own float32 products (numba_gemm) serve on this machine: only where
they beat NumPy's BLAS, timed once per machine and remembered.

The own products are written for 512-bit vector units; NumPy's BLAS picks its kernels from
the CPU (or from OPENBLAS_CORETYPE where the machine sets it). Which is faster depends on
both: on a CPU that executes AVX-512 on 256-bit units, or with a BLAS that has AVX-512
kernels of its own, the BLAS may win. So on a CPU with AVX-512 the first use times both on
the training step's products, on one thread each (the other programs of a busy machine
then disturb single calls, not the comparison: the fastest of several calls is kept), and
stores the verdict in `cache_path()` under a key of CPU, NumPy, Numba and thread pool.

TINYNET_OWN_PRODUCTS=1 or 0 decides without timing (for comparing both paths, as
bench.step does); TINYNET_CACHE names the folder of the verdicts (default ~/.cache/tinynet).
"""

import json
import os
import time
from pathlib import Path

import llvmlite.binding as llvm
import numba
import numpy as np

# (M, K, N, a transposed?): the decoder's gate products (bottom and upper layers; the weight
# gradient reads a transposed view) and the encoder's dense layer both ways (eq. 7), at batch 100.
PRODUCT_SHAPES = ((100, 284, 512, False), (100, 256, 512, False), (284, 100, 512, True),
                  (100, 3136, 100, False), (3136, 100, 100, True))
CONV_SHAPE = (20, 32, 14, 14, 64, 5)  # conv2 (Table 1) on 20 images: N, C, H, W, F, k
REPEATS = 15  # calls of each, alternating own and BLAS; the fastest of each counts
MARGIN = 1.0  # the own products serve where their total time <= MARGIN x the BLAS's
CACHE_FILE = "own-products.json"


def cache_path():
    return Path(os.environ.get("TINYNET_CACHE") or "~/.cache/tinynet").expanduser() / CACHE_FILE


def machine_key():
    """What the verdict depends on: the CPU as LLVM names it, the libraries, the thread pool."""
    return (f"{llvm.get_host_cpu_name()} numpy {np.__version__} numba {numba.__version__} "
            f"threads {numba.config.NUMBA_NUM_THREADS}")


def _seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _single_threaded_blas():
    try:
        import threadpoolctl
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(1, user_api="blas")


def time_both(own_matmul, own_correlate, zero_padded):
    """(own seconds, BLAS seconds): the fastest call of each product, summed over
    PRODUCT_SHAPES and one convolution (own: straight from the padded image; BLAS: the
    product of the im2col columns, whose making is not counted)."""
    rng = np.random.default_rng(0)
    pairs = []
    for M, K, N, transposed in PRODUCT_SHAPES:
        a = rng.random((K, M), dtype=np.float32).T if transposed else rng.random((M, K), dtype=np.float32)
        b = rng.random((K, N), dtype=np.float32)
        pairs.append((lambda a=a, b=b: own_matmul(a, b), lambda a=a, b=b: a @ b))
    n, c, h, w, f, k = CONV_SHAPE
    x_padded = zero_padded(rng.random((n, c, h, w), dtype=np.float32), k // 2)
    W = rng.random((f, c, k, k), dtype=np.float32)
    columns = rng.random((c * k * k, n * h * w), dtype=np.float32)
    W_rows = W.reshape(f, -1)
    pairs.append((lambda: own_correlate(x_padded, W), lambda: W_rows @ columns))
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with _single_threaded_blas():
            for own, blas in pairs:  # compile and warm up
                own()
                blas()
            own_s = blas_s = 0.0
            for own, blas in pairs:
                timings = [(_seconds(own), _seconds(blas)) for _ in range(REPEATS)]
                own_s += min(t for t, _ in timings)
                blas_s += min(t for _, t in timings)
    finally:
        numba.set_num_threads(threads)
    return own_s, blas_s


def own_products_serve(has_avx512, own_matmul, own_correlate, zero_padded):
    """True where the own products should serve: TINYNET_OWN_PRODUCTS if set; never without
    AVX-512; else the remembered verdict for this machine, timed (time_both) when none is."""
    forced = os.environ.get("TINYNET_OWN_PRODUCTS")
    if forced in ("0", "1"):
        return forced == "1"
    if not has_avx512:
        return False
    path, key = cache_path(), machine_key()
    try:
        verdicts = json.loads(path.read_text())
        return bool(verdicts[key]["own_serves"])
    except (OSError, ValueError, KeyError, TypeError):
        verdicts = None
    own_s, blas_s = time_both(own_matmul, own_correlate, zero_padded)
    verdict = {"own_s": own_s, "blas_s": blas_s, "own_serves": own_s <= MARGIN * blas_s}
    _remember(path, key, verdict, verdicts if isinstance(verdicts, dict) else {})
    return verdict["own_serves"]


def _remember(path, key, verdict, verdicts):
    """Add `verdict` to the file (written whole, then renamed); a folder that cannot be
    written only means timing again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({**verdicts, key: verdict}, indent=1))
        os.replace(temporary, path)
    except OSError:
        pass
