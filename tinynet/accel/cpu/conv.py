"""The CPU twins of tinynet.functional.conv for float32 and float64 NumPy arrays: the same
columns and products, cut into cache-sized batch chunks, and on CPUs with AVX-512 for
float32 no columns at all.

Chunks: the batch goes through in chunks whose columns fit in cache (CPU_CHUNK_BYTES), so
each product reads the columns that im2col has just written, and col2im the ones the
product has just written, instead of whole-batch passes through main memory (bench/RESULTS.md
has the comparison). Columns are rebuilt whenever they are needed (forward and backward)
rather than kept, as in the reference.

Column-free: tinynet.accel.cpu.numba_gemm computes a correlation by letting the product's
tiles read the padded image through a table of window offsets; at stride 1 dL/dx is also
such a correlation (of dy, padded by k - 1 - pad, with W flipped and its two channel axes
swapped), and the transposed convolution is one stride-1 correlation per phase of its output.

The caches have the reference's layout (x, W, stride, pad), so either backward can take
either forward's cache.
"""

import numpy as np

from ...functional.matmul import matmul
from ...shapes import conv_transpose_output_size, output_size
from . import numba_gemm
from . import numba_kernels as kernels

CPU_CHUNK_BYTES = 2 * 2**20


def _column_free_products(*arrays):
    """True where numba_gemm may serve `arrays`: float32, on a CPU with AVX-512 (elsewhere
    NumPy's BLAS is as fast)."""
    return numba_gemm.USEFUL and all(a.dtype == np.float32 for a in arrays)


def _batch_chunks(N, column_bytes):
    """Slices of a batch of N: as many images as keep a chunk's columns (`column_bytes` per
    image) within CPU_CHUNK_BYTES."""
    size = max(1, CPU_CHUNK_BYTES // column_bytes)
    return [slice(start, min(start + size, N)) for start in range(0, N, size)]


def _columns_by_chunk(x, kh, kw, stride, pad):
    """(chunk, im2col(x[chunk])) for the batch chunks of x, one at a time."""
    N, C, Hi, Wi = x.shape
    pixels = output_size(Hi, kh, stride, pad) * output_size(Wi, kw, stride, pad)
    for chunk in _batch_chunks(N, C * kh * kw * pixels * x.itemsize):
        yield chunk, kernels.im2col(x[chunk], kh, kw, stride, pad)


def _correlate(x, W, stride, pad):
    """y[n, f] = sum_c W[f, c] * x[n, c] (cross-correlation), one product per batch chunk.

    x: (N, C, H, W), W: (F, C, kh, kw) -> y: (N, F, Ho, Wo) contiguous.
    """
    F, _, kh, kw = W.shape
    N, _, Hi, Wi = x.shape
    W_rows = W.reshape(F, -1)
    y = np.empty((N, F, output_size(Hi, kh, stride, pad), output_size(Wi, kw, stride, pad)), dtype=x.dtype)
    for chunk, cols in _columns_by_chunk(x, kh, kw, stride, pad):
        kernels.rows_into_images(matmul(W_rows, cols), y[chunk])
    return y


def _correlate_adjoint(y_rows, W, x_shape, stride, pad):
    """Adjoint of `_correlate` in x: y_rows (F, N*Ho*Wo) -> (N, C, H, W) with x_shape (N, C, H, W)."""
    F, C, kh, kw = W.shape
    N, _, Hi, Wi = x_shape
    pixels = output_size(Hi, kh, stride, pad) * output_size(Wi, kw, stride, pad)
    W_rows = W.reshape(F, -1)
    dx = np.empty(x_shape, dtype=y_rows.dtype)
    for chunk in _batch_chunks(N, C * kh * kw * pixels * dx.itemsize):
        columns = y_rows[:, chunk.start * pixels:chunk.stop * pixels]
        dx[chunk] = kernels.col2im(matmul(W_rows.T, columns), dx[chunk].shape, kh, kw, stride, pad)
    return dx


def conv2d_forward(x, W, b, stride=1, pad=0):
    """tinynet.functional.conv.conv2d_forward."""
    if _column_free_products(x, W) and numba_gemm.correlate_fits(
            output_size(x.shape[3], W.shape[3], stride, pad), W.shape[0], stride):
        y = numba_gemm.correlate(numba_gemm.zero_padded(x, pad), W, stride)
    else:
        y = _correlate(x, W, stride, pad)
    y += b[:, None, None]
    return y, (x, W, stride, pad)


def conv2d_backward(dy, cache, input_grad=True):
    """tinynet.functional.conv.conv2d_backward: each gradient without columns where
    numba_gemm serves it, else from each chunk's columns."""
    x, W, stride, pad = cache
    F, C, kh, kw = W.shape
    column_free = _column_free_products(x, dy, W)
    weights_column_free = column_free and numba_gemm.weight_gradient_fits(C, kh, kw)
    input_column_free = (column_free and stride == 1 and kh == kw and pad < kh
                         and numba_gemm.correlate_fits(x.shape[3], C, 1))
    input_grad_by_columns = input_grad and not input_column_free
    dy_rows = kernels.images_to_rows(dy) if not weights_column_free or input_grad_by_columns else None
    if weights_column_free:
        dW = numba_gemm.correlate_weight_gradient(numba_gemm.zero_padded(x, pad), dy, kh, kw, stride)
    else:
        pixels = dy.shape[2] * dy.shape[3]
        dW = 0
        for chunk, cols in _columns_by_chunk(x, kh, kw, stride, pad):
            dW = dW + matmul(dy_rows[:, chunk.start * pixels:chunk.stop * pixels], cols.T)
        dW = dW.reshape(W.shape)
    if input_grad_by_columns:
        dx = _correlate_adjoint(dy_rows, W, x.shape, stride, pad)
    elif input_grad:
        dx = numba_gemm.correlate(numba_gemm.zero_padded(dy, kh - 1 - pad), W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    else:
        dx = None
    b_grad = dy.sum(axis=(2, 3)).sum(axis=0) if dy_rows is None else dy_rows.sum(axis=1)
    return dx, {"W": dW, "b": b_grad}


def conv_transpose2d_forward(x, W, b, stride=2, pad=0, output_padding=0):
    """tinynet.functional.conv.conv_transpose2d_forward: without columns where numba_gemm
    serves it (numba_gemm.correlate_transposed), else col2im of each chunk's product."""
    if not 0 <= output_padding < stride:
        return NotImplemented  # the reference raises the error
    N, _, Hi, Wi = x.shape
    _, C_out, kh, kw = W.shape
    y_shape = (N, C_out,
               conv_transpose_output_size(Hi, kh, stride, pad, output_padding),
               conv_transpose_output_size(Wi, kw, stride, pad, output_padding))
    if _column_free_products(x, W) and numba_gemm.transposed_fits(y_shape[3], C_out, stride):
        y = numba_gemm.correlate_transposed(x, W, stride, pad, y_shape[2:])
    else:
        y = _correlate_adjoint(kernels.images_to_rows(x), W, y_shape, stride, pad)
    y += b[:, None, None]
    return y, (x, W, stride, pad)


def conv_transpose2d_backward(dy, cache):
    """tinynet.functional.conv.conv_transpose2d_backward: dL/dx is the conv2d of dy with W,
    dL/dW = x_rows @ cols(dy)^T; both without columns where numba_gemm serves them (dy is
    the input of that conv2d, x the gradient at its output), else from each chunk's columns."""
    x, W, stride, pad = cache
    C_in, C_out, kh, kw = W.shape
    b_grad = dy.sum(axis=(0, 2, 3))
    if (_column_free_products(x, dy, W) and numba_gemm.correlate_fits(x.shape[3], C_in, stride)
            and numba_gemm.weight_gradient_fits(C_out, kh, kw)):
        dy_padded = numba_gemm.zero_padded(dy, pad)
        return numba_gemm.correlate(dy_padded, W, stride), {
            "W": numba_gemm.correlate_weight_gradient(dy_padded, x, kh, kw, stride), "b": b_grad}
    W_rows = W.reshape(C_in, -1)
    dx, dW = np.empty(x.shape, dtype=x.dtype), 0
    for chunk, cols in _columns_by_chunk(dy, kh, kw, stride, pad):
        kernels.rows_into_images(matmul(W_rows, cols), dx[chunk])
        dW = dW + matmul(kernels.images_to_rows(x[chunk]), cols.T)
    return dx, {"W": dW.reshape(W.shape), "b": b_grad}
