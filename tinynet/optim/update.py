"""One training step's parameter update (section 5.3): eq. (17)'s gradient, clipping by
global norm, the optimizer's step and the weight average, in that order, and then the
negligible values of the weights, the optimizer's state and the average set to zero
(tinynet.negligible)."""

from ..dispatch import accelerated
from ..functional.losses import add_l2_gradients
from ..negligible import flush_negligible
from .clip import clip_grad_norm


@accelerated
def update_parameters(params, grads, weights, optimizer, l2, clip, average=None):
    """grads += 2 l2 w for the `weights` (eq. 17), clip the gradients to a joint norm of
    `clip`, then `optimizer.apply` and `average.apply` (unless average is None), then
    flush_negligible on every array they update, in place.

    params, grads: {name: array} with the same keys; weights: {name: array}, the params
    that take eq. (17)'s term. The optimizer's and the average's `begin_step` come first.
    (On the GPU, for Adam keeping its scalars on the device, the twin does all of it in two
    kernels over every parameter: tinynet.accel.gpu.update.)
    """
    if set(params) != set(grads):
        raise KeyError(f"params and grads differ: {sorted(set(params) ^ set(grads))}")
    add_l2_gradients(grads, weights, l2)
    clip_grad_norm(grads, clip)
    optimizer.apply(params, grads)
    if average is not None:
        average.apply(params)
    for array in updated_arrays(params, optimizer, average):
        flush_negligible(array)


def updated_arrays(params, optimizer, average=None):
    """The arrays a step updates: the parameters, the optimizer's state and the average's."""
    arrays = list(params.values())
    arrays += [value for state in optimizer.state.values() for value in state.values()]
    if average is not None:
        arrays += list(average.average.values())
    return arrays
