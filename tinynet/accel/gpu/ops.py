"""The GPU twins with their references' signatures: what the kernels need of their
arguments (a twin returns NotImplemented where they cannot read them), then the kernels of
fused, update and streams. Listed in tinynet.accel.TWINS."""

import cupy

from ...optim.adam import Adam
from ..cell_and_pool import CellAndPoolTwins
from . import fused, streams, update

# The fused update kernels take 5 pointers per tensor as arguments, which CUDA limits to 4 KB in all
MAX_FUSED_TENSORS = 80


def matmul(a, b):
    """tinynet.functional.matmul.matmul: cuBLAS (fused.gpu_matmul) for 2-D arrays of one dtype."""
    if a.dtype != b.dtype or a.ndim != 2 or b.ndim != 2:
        return NotImplemented
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align")
    return fused.gpu_matmul(a, b)


_cell_and_pool = CellAndPoolTwins(fused, cupy)
maxpool2d_forward = _cell_and_pool.maxpool2d_forward
maxpool2d_backward = _cell_and_pool.maxpool2d_backward
lstm_cell_forward_over_input = _cell_and_pool.lstm_cell_forward_over_input
lstm_cell_forward = _cell_and_pool.lstm_cell_forward
lstm_cell_backward_into = _cell_and_pool.lstm_cell_backward_into
lstm_cell_backward = _cell_and_pool.lstm_cell_backward


def lstm_layer_step_forward(step_input, W, c_prev, a_fixed, mask, h_out, up_out, literal_eq13=False):
    """tinynet.accel.decoder_buffered.lstm_layer_step_forward, for C-contiguous step_input and W."""
    if not (step_input.flags.c_contiguous and W.flags.c_contiguous):
        return NotImplemented
    return fused.lstm_layer_step_forward(step_input, W, c_prev, a_fixed, mask, h_out, up_out, literal_eq13)


def lstm_layer_step_backward(d_up, mask, dh_next, dc_next, cache, W_input_T, da_out):
    """tinynet.accel.decoder_buffered.lstm_layer_step_backward, for C-contiguous W_input_T,
    da_out and cached gates, where a block's gate gradients fit in shared memory."""
    if not (W_input_T.flags.c_contiguous and da_out.flags.c_contiguous and cache[0].flags.c_contiguous
            and cache[0].dtype == d_up.dtype and fused.fits_layer_step_backward(d_up)):
        return NotImplemented
    return fused.lstm_layer_step_backward(d_up, mask, dh_next, dc_next, cache, W_input_T, da_out)


def output_row_forward(top, W, b, y_out, feedback_out):
    """tinynet.accel.decoder_buffered.output_row_forward, for C-contiguous top and y_out."""
    if not (top.flags.c_contiguous and y_out.flags.c_contiguous):
        return NotImplemented
    return fused.output_row_forward(top, W, b, y_out, feedback_out)


def output_row_backward(dy, dy_fed_back, y, W, dz_out):
    """tinynet.accel.decoder_buffered.output_row_backward, for C-contiguous y, W and dz_out."""
    if not (y.flags.c_contiguous and W.flags.c_contiguous and dz_out.flags.c_contiguous):
        return NotImplemented
    return fused.output_row_backward(dy, dy_fed_back, y, W, dz_out)


def make_rng(xp, seed):
    """tinynet.functional.dropout.make_rng for CuPy: the counter-based generator whose seed
    lives in device memory and restarts in place (fused.CounterRandom.reseed)."""
    return fused.CounterRandom(seed)


def add_l2_gradients(grads, weights, lam):
    """tinynet.functional.losses.add_l2_gradients, one kernel per weight."""
    for name, w in weights.items():
        fused.add_scaled(grads[name], w, 2 * lam)


def clip_grad_norm(grads, max_norm):
    """tinynet.optim.clip.clip_grad_norm (fused.clip_grad_norm)."""
    return fused.clip_grad_norm(list(grads.values()), max_norm)


def adam_update(param, grad, m, v, beta1, beta2, step, eps_hat):
    """tinynet.optim.adam.adam_update, for C-contiguous arrays."""
    if not all(a.flags.c_contiguous for a in (param, grad, m, v)):
        return NotImplemented
    fused.adam_update(param, grad, m, v, beta1, beta2, step, eps_hat)


def update_parameters(params, grads, weights, optimizer, l2, clip, average=None):
    """tinynet.optim.update.update_parameters in two kernels over every parameter
    (tinynet.accel.gpu.update), for Adam and the average keeping their scalars on the device
    (keep_scalars_on_device, as in a CUDA graph); declines otherwise."""
    if set(params) != set(grads):
        return NotImplemented  # the reference raises the error
    names = list(params)
    states = _fused_adam_states(names, params, grads, optimizer, average)
    if states is None:
        return NotImplemented
    averages = None if average is None else [average.average[name] for name in names]
    update.update_all([params[n] for n in names], [grads[n] for n in names], [n in weights for n in names],
                      [s["m"] for s in states], [s["v"] for s in states], averages, l2, clip,
                      optimizer.beta1, optimizer.beta2, optimizer.scalar_buffer,
                      None if average is None else average.scalar_buffer)


def _fused_adam_states(names, params, grads, optimizer, average):
    """Adam's state of each parameter when the fused kernels may serve this update (CuPy
    arrays of one dtype, all C-contiguous, scalars on the device in that dtype, at most
    MAX_FUSED_TENSORS tensors), else None."""
    if not isinstance(optimizer, Adam) or optimizer.scalar_buffer is None or len(names) > MAX_FUSED_TENSORS:
        return None
    if average is not None and average.scalar_buffer is None:
        return None
    arrays = [params[n] for n in names] + [grads[n] for n in names] + [optimizer.scalar_buffer]
    if average is not None:
        arrays += [average.average[n] for n in names] + [average.scalar_buffer]
    if len({a.dtype for a in arrays}) != 1 or not all(isinstance(a, cupy.ndarray) for a in arrays):
        return None
    states = [optimizer.state_of(n, params[n]) for n in names]
    arrays += [s[slot] for s in states for slot in ("m", "v")]
    return states if all(a.flags.c_contiguous for a in arrays) else None


def side_stream(like):
    """tinynet.dispatch.side_stream on the GPU: a second stream (streams.SideStream)."""
    return streams.SideStream()

