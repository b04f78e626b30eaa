"""Convolution, eq. (5) before its activation, and its adjoint, the transposed convolution
(the "deconvolution" of Figure 1's convolutional decoder).

Both are one matrix product over *columns*: im2col lays every kh x kw window of the padded
input out as a column, so y = W_rows @ cols with W_rows = W reshaped to (F, C*kh*kw).
Columns are built from a strided view of the input (no Python loop over pixels); col2im,
the adjoint of im2col, adds each column back into the pixels it was read from.

Layout: images NCHW; columns (C*kh*kw, N*Ho*Wo), so one product serves the whole batch.
The caches keep the input, not its columns: those are (C*kh*kw) / stride^2 times its size,
and the backward rebuilds them.
"""

from ..backend import xp_of
from ..dispatch import accelerated
from ..shapes import conv_transpose_output_size, output_size, sliding_windows
from .matmul import matmul


def _pad(x, pad):
    if pad == 0:
        return x
    N, C, Hi, Wi = x.shape
    x_padded = xp_of(x).zeros((N, C, Hi + 2 * pad, Wi + 2 * pad), dtype=x.dtype)
    x_padded[:, :, pad:pad + Hi, pad:pad + Wi] = x
    return x_padded


@accelerated
def im2col(x, kh, kw, stride, pad):
    """x: (N, C, H, W) -> cols (C*kh*kw, N*Ho*Wo), row (c, i, j), column (n, h, w)."""
    windows = sliding_windows(_pad(x, pad), kh, kw, stride)
    N, C, Ho, Wo = windows.shape[:4]
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * kh * kw, N * Ho * Wo)


@accelerated
def col2im(cols, x_shape, kh, kw, stride, pad):
    """Adjoint of im2col: cols (C*kh*kw, N*Ho*Wo) -> dx (N, C, H, W), summing overlapping windows."""
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
    return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1)


def rows_to_images(rows, n):
    """(F, n*H*W) -> (n, F, H, W) for images of H x W pixels: the inverse of images_to_rows."""
    F = rows.shape[0]
    return rows.reshape(F, n, -1).transpose(1, 0, 2)


def correlate(x, W, stride, pad):
    """y[n, f] = sum_c W[f, c] * x[n, c] (cross-correlation): x (N, C, H, W), W (F, C, kh, kw)
    -> y (N, F, Ho, Wo), one product with the columns of x."""
    F, _, kh, kw = W.shape
    N, _, Hi, Wi = x.shape
    Ho, Wo = output_size(Hi, kh, stride, pad), output_size(Wi, kw, stride, pad)
    y_rows = matmul(W.reshape(F, -1), im2col(x, kh, kw, stride, pad))
    return rows_to_images(y_rows, N).reshape(N, F, Ho, Wo)


@accelerated
def conv2d_forward(x, W, b, stride=1, pad=0):
    """Eq. (5) before f_a: y_j = b_j + sum_i k_ij * x_i (cross-correlation, like PyTorch).

    x: (N, C, H, W), W: (F, C, kh, kw), b: (F,) -> y: (N, F, Ho, Wo),
    Ho = (H + 2 pad - kh) // stride + 1 (and likewise Wo); pad=2 keeps a 5x5 conv 'same'.
    The cache is (x, W, stride, pad).
    """
    y = correlate(x, W, stride, pad) + b[:, None, None]
    return y, (x, W, stride, pad)


@accelerated
def conv2d_backward(dy, cache, input_grad=True):
    """dy: (N, F, Ho, Wo) -> dx: (N, C, H, W), grads {W: (F, C, kh, kw), b: (F,)}.

    dL/dW = dy_rows @ cols^T, dL/dx = col2im(W_rows^T @ dy_rows), dL/db = sum of dy over
    N, Ho, Wo. With input_grad=False dx is None and not computed (the input is data, e.g.
    the image).
    """
    x, W, stride, pad = cache
    F, _, kh, kw = W.shape
    dy_rows = images_to_rows(dy)
    dW = matmul(dy_rows, im2col(x, kh, kw, stride, pad).T).reshape(W.shape)
    dx = col2im(matmul(W.reshape(F, -1).T, dy_rows), x.shape, kh, kw, stride, pad) if input_grad else None
    return dx, {"W": dW, "b": dy_rows.sum(axis=1)}


@accelerated
def conv_transpose2d_forward(x, W, b, stride=2, pad=0, output_padding=0):
    """Transposed convolution ("deconvolution", Figure 1): the adjoint in its input of a
    conv2d with the same W, stride and pad, plus a bias.

    x: (N, C_in, H, W), W: (C_in, C_out, kh, kw) as in PyTorch, b: (C_out,)
    -> y: (N, C_out, H_out, W_out), H_out = (H - 1) * stride - 2 pad + kh + output_padding.
    output_padding (< stride) picks which of the sizes that conv2d floors to H is produced.
    The symmetric decoder of the paper's CNN-CNN baseline mirrors the encoder's 5x5 'same'
    conv and 2x2 pool with kh = kw = 5, stride 2, pad 2, output_padding 1:
    64@7x7 -> 32@14x14 -> 1@28x28.
    """
    if not 0 <= output_padding < stride:
        raise ValueError(f"output_padding must be in [0, stride), got {output_padding} with stride {stride}")
    N, C_in, Hi, Wi = x.shape
    _, C_out, kh, kw = W.shape
    y_shape = (N, C_out,
               conv_transpose_output_size(Hi, kh, stride, pad, output_padding),
               conv_transpose_output_size(Wi, kw, stride, pad, output_padding))
    y = col2im(matmul(W.reshape(C_in, -1).T, images_to_rows(x)), y_shape, kh, kw, stride, pad)
    return y + b[:, None, None], (x, W, stride, pad)


@accelerated
def conv_transpose2d_backward(dy, cache):
    """dy: (N, C_out, H_out, W_out) -> dx: (N, C_in, H, W), grads {W: (C_in, C_out, kh, kw), b: (C_out,)}.

    dL/dx is the conv2d of dy with W (without bias), W_rows @ cols(dy); dL/dW = x_rows @ cols(dy)^T.
    """
    x, W, stride, pad = cache
    C_in, _, kh, kw = W.shape
    cols = im2col(dy, kh, kw, stride, pad)
    dx = rows_to_images(matmul(W.reshape(C_in, -1), cols), x.shape[0]).reshape(x.shape)
    dW = matmul(images_to_rows(x), cols.T).reshape(W.shape)
    return dx, {"W": dW, "b": dy.sum(axis=(0, 2, 3))}
