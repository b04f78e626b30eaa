"""Eq. (5) convolution and its adjoint, the transposed convolution of Figure 1's decoder:
float64 gradient checks, a naive loop, PyTorch where importable, adjointness, layer shapes."""

import numpy as np
import pytest

from tinynet.backend import to_numpy
from tinynet.functional.conv import conv2d_backward, conv2d_forward, conv_transpose2d_backward, conv_transpose2d_forward
from tinynet.gradcheck import check_gradients
from tinynet.layers import Conv2D, ConvTranspose2D, Flatten, MaxPool2D, Sequential

BOUND = 1e-6  # worst relative error allowed, float64 central differences (eps 1e-6)

# (x shape, W shape, stride, pad): odd non-square images and kernels; stride 2 floors a row.
CONV_CASES = [
    ((2, 3, 7, 5), (4, 3, 3, 2), 1, 1),
    ((2, 2, 8, 7), (3, 2, 3, 3), 2, 1),
    ((1, 3, 6, 9), (2, 3, 5, 5), 1, 2),
]
# (x shape, W shape (C_in, C_out, kh, kw), stride, pad, output_padding)
CONV_T_CASES = [
    ((2, 3, 4, 3), (3, 2, 3, 2), 2, 0, 0),
    ((2, 2, 3, 4), (2, 3, 5, 5), 2, 2, 1),
    ((1, 3, 5, 4), (3, 2, 3, 3), 1, 1, 0),
    ((2, 2, 3, 2), (2, 1, 2, 2), 2, 0, 1),
]


def conv2d_naive(x, W, b, stride, pad):
    """Eq. (5) written as loops over output pixels: the reference."""
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (Wd + 2 * pad - kw) // stride + 1
    y = np.empty((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for h in range(Ho):
                for w in range(Wo):
                    patch = x[n, :, h * stride:h * stride + kh, w * stride:w * stride + kw]
                    y[n, f, h, w] = np.sum(patch * W[f]) + b[f]
    return y


def random_arrays(xp, rng, *shapes):
    return [xp.asarray(rng.standard_normal(shape)) for shape in shapes]


@pytest.mark.parametrize("x_shape, W_shape, stride, pad", CONV_CASES)
def test_eq05_conv2d_gradients(xp, rng, x_shape, W_shape, stride, pad):
    x, W, b = random_arrays(xp, rng, x_shape, W_shape, W_shape[:1])
    y, cache = conv2d_forward(x, W, b, stride, pad)
    dy = xp.asarray(rng.standard_normal(y.shape))
    dx, grads = conv2d_backward(dy, cache)
    check_gradients(lambda: conv2d_forward(x, W, b, stride, pad)[0], {"x": x, "W": W, "b": b},
                    {"x": dx, **grads}, dy, bound=BOUND)


@pytest.mark.parametrize("x_shape, W_shape, stride, pad", CONV_CASES)
def test_eq05_conv2d_matches_naive_loop(xp, rng, x_shape, W_shape, stride, pad):
    x, W, b = (rng.standard_normal(shape) for shape in (x_shape, W_shape, W_shape[:1]))
    y, _ = conv2d_forward(xp.asarray(x), xp.asarray(W), xp.asarray(b), stride, pad)
    np.testing.assert_allclose(to_numpy(y), conv2d_naive(x, W, b, stride, pad), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, W_shape, stride, pad", CONV_CASES)
def test_eq05_conv2d_matches_torch(xp, rng, x_shape, W_shape, stride, pad):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the naive loop is the reference")
    x, W, b = (rng.standard_normal(shape) for shape in (x_shape, W_shape, W_shape[:1]))
    y, _ = conv2d_forward(xp.asarray(x), xp.asarray(W), xp.asarray(b), stride, pad)
    expected = torch.nn.functional.conv2d(*map(torch.from_numpy, (x, W, b)), stride=stride, padding=pad)
    np.testing.assert_allclose(to_numpy(y), expected.numpy(), rtol=1e-12, atol=1e-12)


def test_eq05_conv2d_keeps_float32(xp, rng):
    x, W, b = (xp.asarray(a, dtype=xp.float32) for a in random_arrays(np, rng, (2, 3, 6, 5), (4, 3, 5, 5), (4,)))
    y, cache = conv2d_forward(x, W, b, 1, 2)
    dx, grads = conv2d_backward(xp.ones_like(y), cache)
    assert y.shape == (2, 4, 6, 5) and dx.shape == x.shape
    assert {y.dtype, dx.dtype, grads["W"].dtype, grads["b"].dtype} == {np.dtype(np.float32)}


@pytest.mark.parametrize("x_shape, W_shape, stride, pad, output_padding", CONV_T_CASES)
def test_eq05_conv_transpose2d_gradients(xp, rng, x_shape, W_shape, stride, pad, output_padding):
    x, W, b = random_arrays(xp, rng, x_shape, W_shape, W_shape[1:2])
    y, cache = conv_transpose2d_forward(x, W, b, stride, pad, output_padding)
    dy = xp.asarray(rng.standard_normal(y.shape))
    dx, grads = conv_transpose2d_backward(dy, cache)
    check_gradients(lambda: conv_transpose2d_forward(x, W, b, stride, pad, output_padding)[0],
                    {"x": x, "W": W, "b": b}, {"x": dx, **grads}, dy, bound=BOUND)


@pytest.mark.parametrize("x_shape, W_shape, stride, pad, output_padding", CONV_T_CASES)
def test_eq05_conv_transpose2d_matches_torch(xp, rng, x_shape, W_shape, stride, pad, output_padding):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: adjointness is the reference")
    x, W, b = (rng.standard_normal(shape) for shape in (x_shape, W_shape, W_shape[1:2]))
    y, _ = conv_transpose2d_forward(xp.asarray(x), xp.asarray(W), xp.asarray(b), stride, pad, output_padding)
    expected = torch.nn.functional.conv_transpose2d(*map(torch.from_numpy, (x, W, b)), stride=stride,
                                                    padding=pad, output_padding=output_padding)
    assert y.shape == tuple(expected.shape)
    np.testing.assert_allclose(to_numpy(y), expected.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, W_shape, stride, pad, output_padding", CONV_T_CASES)
def test_eq05_conv_transpose2d_is_adjoint_of_conv2d(xp, rng, x_shape, W_shape, stride, pad, output_padding):
    """<conv2d(z), x> == <z, conv_transpose2d(x)> for the same W, stride and pad (no bias)."""
    C_in, C_out = W_shape[:2]
    x, W = random_arrays(xp, rng, x_shape, W_shape)
    y, _ = conv_transpose2d_forward(x, W, xp.zeros(C_out), stride, pad, output_padding)
    z = xp.asarray(rng.standard_normal(y.shape))
    conv_z, _ = conv2d_forward(z, W, xp.zeros(C_in), stride, pad)
    assert conv_z.shape == x.shape
    np.testing.assert_allclose(float(xp.sum(conv_z * x)), float(xp.sum(z * y)), rtol=1e-12)


def test_conv_transpose2d_rejects_output_padding_not_below_stride(xp):
    x, W, b = xp.zeros((1, 1, 3, 3)), xp.zeros((1, 1, 3, 3)), xp.zeros(1)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose2d_forward(x, W, b, stride=2, pad=0, output_padding=2)


def test_layers_map_the_paper_shapes(xp, rng):
    """Table 1's encoder 1@28x28 -> 32@14x14 -> 64@7x7, and the symmetric decoder back to 1@28x28."""
    encoder = Sequential([("conv1", Conv2D(1, 32, 5, rng)), ("pool1", MaxPool2D()),
                          ("conv2", Conv2D(32, 64, 5, rng)), ("pool2", MaxPool2D())]).to(xp)
    decoder = Sequential([("deconv1", ConvTranspose2D(64, 32, 5, rng, stride=2, pad=2, output_padding=1)),
                          ("deconv2", ConvTranspose2D(32, 1, 5, rng, stride=2, pad=2, output_padding=1))]).to(xp)
    x = xp.zeros((2, 1, 28, 28), dtype=xp.float32)
    code = encoder.forward(x)
    assert code.shape == (2, 64, 7, 7) and code.dtype == np.float32
    assert decoder.layers["deconv1"].forward(code).shape == (2, 32, 14, 14)
    assert decoder.forward(code).shape == (2, 1, 28, 28)
    assert encoder.named_weights().keys() == {"conv1/W", "conv2/W"}


def test_eq05_conv_layers_gradients(xp, rng):
    """Conv2D -> ConvTranspose2D -> Flatten through the layer objects (linear: no kinks or ties)."""
    model = Sequential([("conv", Conv2D(2, 3, 3, rng, dtype=np.float64)),
                        ("deconv", ConvTranspose2D(3, 2, 3, rng, stride=2, pad=1, output_padding=1,
                                                   dtype=np.float64)),
                        ("flat", Flatten())]).to(xp)
    model.layers["conv"].params["b"][...] = xp.asarray(rng.standard_normal(3))
    x = xp.asarray(rng.standard_normal((2, 2, 5, 3)))
    y = model.forward(x, train=True)
    assert y.shape == (2, 2 * 10 * 6)
    dy = xp.asarray(rng.standard_normal(y.shape))
    dx = model.backward(dy)
    check_gradients(lambda: model.forward(x), {"x": x, **model.named_params()},
                    {"x": dx, **model.named_grads()}, dy, bound=BOUND)


def test_flatten_round_trip(xp, rng):
    x = xp.asarray(rng.standard_normal((3, 4, 5, 2)))
    flatten = Flatten()
    y = flatten.forward(x)
    assert y.shape == (3, 40)
    np.testing.assert_array_equal(to_numpy(y[1]), to_numpy(x[1]).ravel())
    np.testing.assert_array_equal(to_numpy(flatten.backward(y)), to_numpy(x))
