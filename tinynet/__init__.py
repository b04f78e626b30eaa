"""tinynet: a small deep-learning framework written by hand, on NumPy (CPU) and CuPy (GPU).

`functional/` holds the pure maths (each `*_forward` returns `(out, cache)`, each
`*_backward` returns `(dx, grads)`), `layers/` the thin objects that own parameters,
`optim/` the optimizers, `kernels/` the optional accelerated twins of hot spots.
"""

__version__ = "0.1.0"
