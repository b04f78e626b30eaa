"""Numerical gradient checks: central differences in float64 against a backward pass.

The upstream gradient is random (an all-ones one hides transposition bugs), and the
relative error is max(|a - n| / max(1e-8, |a| + |n|)) over the elements.

Checks through sigmoids and tanh take their numerical side from the forward recomputed in
long double (`in_long_double`). Where np.longdouble is no wider than float64 (for example
on ARM macOS or Windows), that numerical side keeps float64's round-off, which no
elementwise bound of 1e-6 survives on the smallest elements; `check_gradients` then
bounds the norm-wise error, max |a - n| / max |n| per input, by FLOAT64_NORMWISE_BOUND
instead (a wrong or missing term gives an error of order 1).
"""

import numpy as np

from .backend import to_device, to_numpy, xp_of

# Norm-wise bound of the checks whose numerical side could not be computed wider than float64:
# their worst norm-wise error on the 3-layer decoder with float64 numerics is about 1.1e-7
FLOAT64_NORMWISE_BOUND = 1e-6


def relative_error(analytic, numeric):
    """Worst elementwise relative error between two gradients, and where it occurs."""
    analytic = to_numpy(analytic).astype(np.float64)
    numeric = to_numpy(numeric).astype(np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradient shapes differ: {analytic.shape} vs {numeric.shape}")
    if analytic.size == 0:
        return 0.0, ()
    errors = np.abs(analytic - numeric) / np.maximum(1e-8, np.abs(analytic) + np.abs(numeric))
    where = np.unravel_index(int(np.argmax(errors)), errors.shape)
    return float(errors[where]), tuple(int(i) for i in where)


def normwise_error(analytic, numeric):
    """max |a - n| / max |n|, the error relative to the gradient's largest element."""
    analytic = to_numpy(analytic).astype(np.float64)
    numeric = to_numpy(numeric).astype(np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"gradient shapes differ: {analytic.shape} vs {numeric.shape}")
    if analytic.size == 0:
        return 0.0
    scale = np.abs(numeric).max()
    return float(np.abs(analytic - numeric).max() / scale) if scale > 0 else float(np.abs(analytic).max())


def numerical_gradient(f, x, dy=None, eps=1e-6):
    """d sum(f() * dy) / dx by central differences (dy=None: f returns a scalar).

    `x` must be float64; it is perturbed in place and restored.
    """
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks run in float64, got {x.dtype}")
    xp = xp_of(x)

    def objective():
        out = f()
        if dy is None:
            return float(out)
        return float(xp.sum(out * dy))

    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(*x.shape):
        saved = float(x[index])
        x[index] = saved + eps
        plus = objective()
        x[index] = saved - eps
        minus = objective()
        x[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def check_gradients(f, inputs, analytic, dy=None, eps=1e-6, bound=1e-6):
    """Compare analytic gradients with central differences for every named input.

    f: callable with no arguments that recomputes the output from the arrays in `inputs`.
    inputs: {name: float64 array} perturbed in place; analytic: {name: gradient array}.
    Returns {name: worst relative error}; raises AssertionError with a table when any
    error exceeds `bound`. Where f is an `in_long_double` function that had to compute in
    float64 (`f.float64_round_off`), the error is norm-wise and the bound
    FLOAT64_NORMWISE_BOUND (see the module).
    """
    if set(inputs) != set(analytic):
        raise ValueError(f"inputs {sorted(inputs)} and gradients {sorted(analytic)} differ")
    normwise = getattr(f, "float64_round_off", False)
    if normwise:
        bound = FLOAT64_NORMWISE_BOUND
    rows, worst = [], {}
    for name, x in inputs.items():
        numeric = numerical_gradient(f, x, dy, eps)
        if normwise:
            error, where = normwise_error(analytic[name], numeric), "norm-wise"
        else:
            error, where = relative_error(analytic[name], numeric)
        worst[name] = error
        rows.append((name, tuple(x.shape), error, where))
    failed = [row for row in rows if not row[2] <= bound]
    if failed:
        table = "\n".join(
            f"  {name:<12} shape={str(shape):<18} worst rel. error={error:.3e} at {where}"
            for name, shape, error, where in rows
        )
        raise AssertionError(f"gradient check failed (bound {bound:.0e}):\n{table}")
    return worst


def long_double_is_wider():
    """True where np.longdouble carries more digits than float64 (x86 Linux: 64-bit mantissa)."""
    return np.finfo(np.longdouble).eps < np.finfo(np.float64).eps


def wide_float():
    """The dtype of the numerical side of a check: np.longdouble where it is wider than
    float64, else float64."""
    return np.longdouble if long_double_is_wider() else np.float64


def in_long_double(forward, *arrays):
    """f() for check_gradients: forward(*copies) recomputed on long double NumPy copies of
    `arrays` (whole arrays: check_gradients may perturb them through views), minus its
    starting value, rounded to float64 in the arrays' module.

    Why: a sigmoid or tanh output carries ~1e-16 of float64 round-off, which a central
    difference with eps = 1e-6 turns into ~1e-10 of error in a numerical gradient: more
    than 1e-6 of its smallest elements, which products of gate slopes and sums of few
    terms make common. Long double cuts that round-off 2000-fold. Where it is no wider
    than float64 the returned function says so (`float64_round_off`), and check_gradients
    bounds the norm-wise error instead.
    """
    xp = xp_of(*arrays)
    dtype = wide_float()

    def run():
        return forward(*(to_numpy(x).astype(dtype) for x in arrays))

    start = run()

    def f():
        return to_device((run() - start).astype(np.float64), xp)

    f.float64_round_off = dtype is not np.longdouble
    return f


def layer_in_long_double(forward, model, twin, *inputs):
    """in_long_double for a layer: forward(layer, *inputs) computed by `twin`, the same
    architecture built with dtype=np.longdouble (float64 where that is no wider), loaded with the model's current params
    (those check_gradients perturbs) at every call. Checks first that the twin computes
    what the float64 model computes."""
    params = model.named_params()
    count = len(inputs)

    def run(*arrays):
        twin.load_params(dict(zip(params, arrays[count:])))
        return forward(twin, *arrays[:count])

    f = in_long_double(run, *inputs, *params.values())
    own = to_numpy(forward(model, *inputs))
    twin_own = run(*(to_numpy(x).astype(wide_float()) for x in (*inputs, *params.values())))
    if not np.allclose(own, twin_own.astype(np.float64), rtol=1e-10, atol=1e-12):
        raise AssertionError("the long double twin does not compute what the model computes")
    return f
