"""One training step's parameter update (section 5.3): eq. (17)'s gradient, clipping by
global norm, the optimizer's step and the weight average, in that order."""

from ..functional.losses import add_l2_gradients
from ..kernels import gpu_kernels_one_dtype
from .adam import Adam
from .clip import clip_grad_norm

# The fused kernels take 5 pointers per tensor as arguments, which CUDA limits to 4 KB in all
MAX_FUSED_TENSORS = 80


def update_parameters(params, grads, weights, optimizer, l2, clip, average=None):
    """grads += 2 l2 w for the `weights` (eq. 17), clip the gradients to a joint norm of
    `clip`, then `optimizer.apply` and `average.apply` (unless average is None), in place.

    params, grads: {name: array} with the same keys; weights: {name: array}, the params
    that take eq. (17)'s term. The optimizer's and the average's `begin_step` come first.
    On the GPU, Adam and the average keeping their scalars on the device
    (keep_scalars_on_device, as in a CUDA graph): all of it in two kernels over every
    parameter (tinynet.kernels.cuda_update); otherwise the four functions one after another,
    which are those kernels' reference twin.
    """
    if set(params) != set(grads):
        raise KeyError(f"params and grads differ: {sorted(set(params) ^ set(grads))}")
    names = list(params)
    states = _fused_adam_states(names, params, grads, optimizer, average)
    if states is not None:
        from ..kernels import cuda_update

        averages = None if average is None else [average.average[name] for name in names]
        cuda_update.update_all([params[n] for n in names], [grads[n] for n in names], [n in weights for n in names],
                               [s["m"] for s in states], [s["v"] for s in states], averages, l2, clip,
                               optimizer.beta1, optimizer.beta2, optimizer.scalar_buffer,
                               None if average is None else average.scalar_buffer)
        return
    add_l2_gradients(grads, weights, l2)
    clip_grad_norm(grads, clip)
    optimizer.apply(params, grads)
    if average is not None:
        average.apply(params)


def _fused_adam_states(names, params, grads, optimizer, average):
    """Adam's state of each parameter when the fused kernels may serve this update (CuPy
    arrays of one dtype, all C-contiguous, scalars on the device in that dtype, at most
    MAX_FUSED_TENSORS tensors), else None."""
    if not isinstance(optimizer, Adam) or optimizer.scalar_buffer is None or len(names) > MAX_FUSED_TENSORS:
        return None
    if average is not None and average.scalar_buffer is None:
        return None
    arrays = [params[n] for n in names] + [grads[n] for n in names]
    if average is not None:
        arrays += [average.average[n] for n in names] + [average.scalar_buffer]
    if gpu_kernels_one_dtype(*arrays, optimizer.scalar_buffer) is None:
        return None
    states = [optimizer.state_of(n, params[n]) for n in names]
    arrays += [s[slot] for s in states for slot in ("m", "v")]
    return states if all(a.flags.c_contiguous for a in arrays) else None
