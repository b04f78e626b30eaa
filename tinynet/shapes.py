"""Shape arithmetic and array views shared by the reference (tinynet.functional) and its
accelerated twins (tinynet.accel): a leaf module that imports nothing of tinynet but the
array-module switch."""

from .backend import xp_of


def output_size(size, kernel, stride, pad):
    """Output length of a convolution along one axis, floored like PyTorch."""
    return (size + 2 * pad - kernel) // stride + 1


def conv_transpose_output_size(size, kernel, stride, pad, output_padding):
    """H_out = (H - 1) * stride - 2 pad + kernel + output_padding."""
    return (size - 1) * stride - 2 * pad + kernel + output_padding


def sliding_windows(x, kh, kw, stride):
    """View (N, C, Ho, Wo, kh, kw) of x (N, C, H, W): [n, c, h, w, i, j] is x[n, c, h*stride+i, w*stride+j].

    No copy: windows overlap in memory, so write through the view one offset (i, j) at a time.
    """
    N, C, Hi, Wi = x.shape
    Ho, Wo = output_size(Hi, kh, stride, 0), output_size(Wi, kw, stride, 0)
    sN, sC, sH, sW = x.strides
    as_strided = xp_of(x).lib.stride_tricks.as_strided
    return as_strided(x, (N, C, Ho, Wo, kh, kw), (sN, sC, stride * sH, stride * sW, sH, sW))


def gate_blocks(gates):
    """The four (..., H) views i, f, g, o of a (..., 4H) array of LSTM gates or their gradients
    (PyTorch's order; g is the new state C~ of eq. 11)."""
    H = gates.shape[-1] // 4
    return gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:3 * H], gates[..., 3 * H:]
