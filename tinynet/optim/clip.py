"""Gradient clipping by global norm, computed on the device without a host sync."""

from ..backend import xp_of
from ..dispatch import accelerated


@accelerated
def clip_grad_norm(grads, max_norm):
    """Scale every gradient in place so that their joint L2 norm is at most `max_norm`.

    Returns the norm before clipping as a 0-d device array (read it back only when logging).
    """
    arrays = list(grads.values())
    xp = xp_of(*arrays)
    norm = xp.sqrt(sum(xp.sum(g * g) for g in arrays))
    scale = xp.minimum(1.0, max_norm / (norm + 1e-6)).astype(arrays[0].dtype)
    for g in arrays:
        g *= scale
    return norm
