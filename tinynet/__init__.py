"""tinynet: a small deep-learning framework written by hand, on NumPy (CPU) and CuPy (GPU).

Reading order: `functional/` holds the maths, plain (each `*_forward` returns `(out, cache)`,
each `*_backward` takes `(dout, cache)` and returns the input gradients and a dict of
parameter gradients); `layers/` the thin objects that own parameters; `optim/` the
optimizers. `accel/` is optional: accelerated twins of the hot functions (Numba on the CPU,
CuPy kernels and CUDA graphs on the GPU), reached only through `dispatch`, the one seam.
"""

__version__ = "0.1.0"
