"""Convolution, eq. (5) before its activation, and its adjoint, the transposed convolution
(the "deconvolution" of Figure 1's convolutional decoder).

Both are one matrix product over *columns*: im2col lays every kh x kw window of the padded
input out as a column, so y = W_rows @ cols with W_rows = W reshaped to (F, C*kh*kw).
Columns are built from a strided view of the input (no Python loop over pixels); col2im,
the adjoint of im2col, adds each column back into the pixels it was read from.

Layout: images NCHW; columns (C*kh*kw, N*Ho*Wo), so the product has the long pixel axis
as its free dimension and one GEMM serves a whole batch. On the CPU the batch goes through
in chunks whose columns fit in cache (CPU_CHUNK_BYTES): each product then reads the columns
that im2col has just written, and col2im the ones the product has just written, which is
about a quarter faster than whole-batch passes through main memory. The GPU takes the batch
in one chunk.

im2col and col2im run as kernels of tinynet.kernels (Numba on the CPU, one CuPy kernel each
on the GPU) whose reference twin is the strided-view code below. On CPUs with AVX-512 the
float32 convolutions skip the columns altogether (tinynet.kernels.numba_gemm: the product's
tiles read the padded image through a table of window offsets); the column products here
are their reference twin.
"""

from ..backend import is_gpu_array, xp_of
from ..kernels import cpu_gemm, cpu_kernels, gpu_kernels
from ..shapes import conv_transpose_output_size, output_size, sliding_windows
from .matmul import matmul

CPU_CHUNK_BYTES = 2 * 2**20


def _pad(x, pad):
    if pad == 0:
        return x
    N, C, Hi, Wi = x.shape
    x_padded = xp_of(x).zeros((N, C, Hi + 2 * pad, Wi + 2 * pad), dtype=x.dtype)
    x_padded[:, :, pad:pad + Hi, pad:pad + Wi] = x
    return x_padded


def im2col(x, kh, kw, stride, pad):
    """x: (N, C, H, W) -> cols (C*kh*kw, N*Ho*Wo), row (c, i, j), column (n, h, w)."""
    kernels = cpu_kernels(x) or gpu_kernels(x)
    if kernels is not None:
        return kernels.im2col(x, kh, kw, stride, pad)
    windows = sliding_windows(_pad(x, pad), kh, kw, stride)
    N, C, Ho, Wo = windows.shape[:4]
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * kh * kw, N * Ho * Wo)


def col2im(cols, x_shape, kh, kw, stride, pad):
    """Adjoint of im2col: cols (C*kh*kw, N*Ho*Wo) -> dx (N, C, H, W), summing overlapping windows."""
    kernels = cpu_kernels(cols) or gpu_kernels(cols)
    if kernels is not None:
        return kernels.col2im(cols, x_shape, kh, kw, stride, pad)
    N, C, Hi, Wi = x_shape
    dx_padded = xp_of(cols).zeros((N, C, Hi + 2 * pad, Wi + 2 * pad), dtype=cols.dtype)
    windows = sliding_windows(dx_padded, kh, kw, stride).transpose(1, 4, 5, 0, 2, 3)
    cols = cols.reshape(windows.shape)
    # Windows of neighbouring pixels share input pixels: add one kernel offset at a time,
    # so no single `+=` writes the same element twice.
    for i in range(kh):
        for j in range(kw):
            windows[:, i, j] += cols[:, i, j]
    return dx_padded[:, :, pad:pad + Hi, pad:pad + Wi]


def images_to_rows(x):
    """(N, C, H, W) -> (C, N*H*W): the matrix that multiplies, or is multiplied by, columns."""
    kernels = cpu_kernels(x)
    if kernels is not None:
        return kernels.images_to_rows(x)
    return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)


def rows_into_images(rows, out):
    """out (n, F, Ho, Wo) <- rows (F, n*Ho*Wo): the inverse of `images_to_rows`, written in place."""
    kernels = cpu_kernels(rows, out)
    if kernels is not None and out.flags.c_contiguous:
        return kernels.rows_into_images(rows, out)
    n, F, Ho, Wo = out.shape
    out[...] = rows.reshape(F, n, Ho, Wo).transpose(1, 0, 2, 3)


def _batch_chunks(N, column_bytes, on_gpu):
    """Slices of a batch of N: the whole batch on the GPU; on the CPU as many images as keep
    a chunk's columns (`column_bytes` per image) within CPU_CHUNK_BYTES."""
    size = N if on_gpu else max(1, CPU_CHUNK_BYTES // column_bytes)
    return [slice(start, min(start + size, N)) for start in range(0, N, size)]


def _columns_by_chunk(x, kh, kw, stride, pad):
    """(chunk, im2col(x[chunk])) for the batch chunks of x, one at a time.

    The columns are rebuilt whenever they are needed (forward and backward) rather than
    kept: (C*kh*kw) / stride^2 times the input's size would otherwise sit in memory between
    the two passes, and writing that much fresh memory every step costs more than im2col.
    """
    N, C, Hi, Wi = x.shape
    pixels = output_size(Hi, kh, stride, pad) * output_size(Wi, kw, stride, pad)
    for chunk in _batch_chunks(N, C * kh * kw * pixels * x.itemsize, is_gpu_array(x)):
        yield chunk, im2col(x[chunk], kh, kw, stride, pad)


def _correlate(x, W, stride, pad):
    """y[n, f] = sum_c W[f, c] * x[n, c] (cross-correlation), one GEMM per batch chunk.

    x: (N, C, H, W), W: (F, C, kh, kw) -> y: (N, F, Ho, Wo) contiguous.
    """
    F, _, kh, kw = W.shape
    N, _, Hi, Wi = x.shape
    W_rows = W.reshape(F, -1)
    y = xp_of(x).empty((N, F, output_size(Hi, kh, stride, pad), output_size(Wi, kw, stride, pad)), dtype=x.dtype)
    for chunk, cols in _columns_by_chunk(x, kh, kw, stride, pad):
        rows_into_images(matmul(W_rows, cols), y[chunk])
    return y


def _correlate_adjoint(y_rows, W, x_shape, stride, pad):
    """Adjoint of `_correlate` in x: y_rows (F, N*Ho*Wo) -> (N, C, H, W) with x_shape (N, C, H, W)."""
    F, C, kh, kw = W.shape
    N, _, Hi, Wi = x_shape
    pixels = output_size(Hi, kh, stride, pad) * output_size(Wi, kw, stride, pad)
    W_rows = W.reshape(F, -1)
    dx = xp_of(y_rows).empty(x_shape, dtype=y_rows.dtype)
    for chunk in _batch_chunks(N, C * kh * kw * pixels * dx.itemsize, is_gpu_array(dx)):
        columns = y_rows[:, chunk.start * pixels:chunk.stop * pixels]
        dx[chunk] = col2im(matmul(W_rows.T, columns), dx[chunk].shape, kh, kw, stride, pad)
    return dx


def _direct(x, dy, W, stride, pad):
    """(numba_gemm module or None, whether it serves dL/dW, whether it serves dL/dx) for the
    backward of conv2d: the CPU's correlations without columns (tinynet.kernels.numba_gemm)."""
    F, C, kh, kw = W.shape
    gemm = cpu_gemm(x, dy, W)
    if gemm is None:
        return None, False, False
    return (gemm, gemm.weight_gradient_fits(C, kh, kw),
            stride == 1 and kh == kw and pad < kh and gemm.correlate_fits(x.shape[3], C, 1))


def conv2d_forward(x, W, b, stride=1, pad=0):
    """Eq. (5) before f_a: y_j = b_j + sum_i k_ij * x_i (cross-correlation, like PyTorch).

    x: (N, C, H, W), W: (F, C, kh, kw), b: (F,) -> y: (N, F, Ho, Wo),
    Ho = (H + 2 pad - kh) // stride + 1 (and likewise Wo); pad=2 keeps a 5x5 conv 'same'.
    The cache is (x, W, stride, pad, the zero-padded x of the CPU's direct path or None).
    """
    gemm = cpu_gemm(x, W)
    if gemm is not None and gemm.correlate_fits(output_size(x.shape[3], W.shape[3], stride, pad), W.shape[0], stride):
        x_padded = gemm.zero_padded(x, pad)  # kept for the weight gradient
        y = gemm.correlate(x_padded, W, stride)
    else:
        x_padded, y = None, _correlate(x, W, stride, pad)
    y += b[:, None, None]
    return y, (x, W, stride, pad, x_padded)


def conv2d_backward(dy, cache, input_grad=True):
    """dy: (N, F, Ho, Wo) -> dx: (N, C, H, W), grads {W: (F, C, kh, kw), b: (F,)}.

    dL/dW = dy_rows @ cols^T, dL/dx = col2im(W_rows^T @ dy_rows), dL/db = sum of dy over N, Ho, Wo.
    At stride 1, dL/dx is also the correlation of dy, padded by k - 1 - pad, with W flipped and
    its two channel axes swapped; on the CPU both gradients are then computed without columns
    (tinynet.kernels.numba_gemm). With input_grad=False dx is None and not computed (the input
    is data, e.g. the image).
    """
    x, W, stride, pad, x_padded = cache
    _, _, kh, kw = W.shape
    gemm, direct_weights, direct_input = _direct(x, dy, W, stride, pad)
    input_grad_by_columns = input_grad and not direct_input
    dy_rows = images_to_rows(dy) if not direct_weights or input_grad_by_columns else None
    if direct_weights:
        if x_padded is None:
            x_padded = gemm.zero_padded(x, pad)
        dW = gemm.correlate_weight_gradient(x_padded, dy, kh, kw, stride)
    else:
        pixels = dy.shape[2] * dy.shape[3]
        dW = 0
        for chunk, cols in _columns_by_chunk(x, kh, kw, stride, pad):
            dW = dW + matmul(dy_rows[:, chunk.start * pixels:chunk.stop * pixels], cols.T)
        dW = dW.reshape(W.shape)
    if input_grad_by_columns:
        dx = _correlate_adjoint(dy_rows, W, x.shape, stride, pad)
    elif input_grad:
        dx = gemm.correlate(gemm.zero_padded(dy, kh - 1 - pad), W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    else:
        dx = None
    b_grad = dy.sum(axis=(2, 3)).sum(axis=0) if dy_rows is None else dy_rows.sum(axis=1)
    return dx, {"W": dW, "b": b_grad}


def conv_transpose2d_forward(x, W, b, stride=2, pad=0, output_padding=0):
    """Transposed convolution ("deconvolution", Figure 1): the adjoint in its input of a
    conv2d with the same W, stride and pad, plus a bias.

    x: (N, C_in, H, W), W: (C_in, C_out, kh, kw) as in PyTorch, b: (C_out,)
    -> y: (N, C_out, H_out, W_out), H_out = (H - 1) * stride - 2 pad + kh + output_padding.
    output_padding (< stride) picks which of the sizes that conv2d floors to H is produced.
    The symmetric decoder of the paper's CNN-CNN baseline mirrors the encoder's 5x5 'same'
    conv and 2x2 pool with kh = kw = 5, stride 2, pad 2, output_padding 1:
    64@7x7 -> 32@14x14 -> 1@28x28. On the CPU: one stride-1 correlation per phase of the
    output, without columns (tinynet.kernels.numba_gemm.correlate_transposed).
    """
    if not 0 <= output_padding < stride:
        raise ValueError(f"output_padding must be in [0, stride), got {output_padding} with stride {stride}")
    N, _, Hi, Wi = x.shape
    _, C_out, kh, kw = W.shape
    y_shape = (N, C_out,
               conv_transpose_output_size(Hi, kh, stride, pad, output_padding),
               conv_transpose_output_size(Wi, kw, stride, pad, output_padding))
    gemm = cpu_gemm(x, W)
    if gemm is not None and gemm.transposed_fits(y_shape[3], C_out, stride):
        y = gemm.correlate_transposed(x, W, stride, pad, y_shape[2:])
    else:
        y = _correlate_adjoint(images_to_rows(x), W, y_shape, stride, pad)
    y += b[:, None, None]
    return y, (x, W, stride, pad)


def conv_transpose2d_backward(dy, cache):
    """dy: (N, C_out, H_out, W_out) -> dx: (N, C_in, H, W), grads {W: (C_in, C_out, kh, kw), b: (C_out,)}.

    dL/dx is the conv2d of dy with W; dL/dW = x_rows @ cols(dy)^T, both from each chunk's
    columns, or on the CPU both as correlations without columns (tinynet.kernels.numba_gemm:
    dy is the input of that conv2d, x the gradient at its output).
    """
    x, W, stride, pad = cache
    C_in, C_out, kh, kw = W.shape
    b_grad = dy.sum(axis=(0, 2, 3))
    gemm = cpu_gemm(x, dy, W)
    if (gemm is not None and gemm.correlate_fits(x.shape[3], C_in, stride)
            and gemm.weight_gradient_fits(C_out, kh, kw)):
        dy_padded = gemm.zero_padded(dy, pad)
        return gemm.correlate(dy_padded, W, stride), {"W": gemm.correlate_weight_gradient(dy_padded, x, kh, kw, stride),
                                                      "b": b_grad}
    W_rows = W.reshape(C_in, -1)
    dx, dW = xp_of(dy).empty_like(x), 0
    for chunk, cols in _columns_by_chunk(dy, kh, kw, stride, pad):
        rows_into_images(matmul(W_rows, cols), dx[chunk])
        dW = dW + matmul(images_to_rows(x[chunk]), cols.T)
    return dx, {"W": dW.reshape(W.shape), "b": b_grad}
