"""Eqs. (3), (4): the encoder-decoder end to end, from the corrupted image to the RMSE loss.

A tiny encoder (dense + tanh, the shape of eq. 7) makes the thought vector v (eq. 3); a
2-layer LSTMDecoder reads v and the image's rows (eq. 4). The image reaches the loss by
two paths (through v and row by row), and both must add up in its gradient.
"""

import numpy as np

from tinynet.functional.losses import rmse_loss
from tinynet.gradcheck import check_gradients, layer_in_long_double
from tinynet.layers import Dense, Layer, LSTMDecoder, Sequential, Tanh

# worst relative error allowed: float64 analytic gradients against central differences
# (eps 1e-6) of the same forward recomputed in long double (tinynet.gradcheck.in_long_double);
# where long double is no wider than float64, norm-wise against gradcheck.FLOAT64_NORMWISE_BOUND
BOUND = 1e-6
N, ROWS, COLS, THOUGHT, HIDDEN = 3, 4, 5, 3, 3  # small, odd, non-square images


class TinyEncoderDecoder(Layer):
    """v = f_encoder(image) (eq. 3); image_cleaned = f_decoder(v, image) (eq. 4)."""

    def __init__(self, rng, dtype):
        super().__init__()
        self.encoder = Sequential([("fc", Dense(ROWS * COLS, THOUGHT, rng, dtype=dtype)), ("tanh", Tanh())])
        self.decoder = LSTMDecoder(COLS, THOUGHT, HIDDEN, 2, rng=rng, dtype=dtype)

    def children(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def forward(self, image, train=False):
        v = self.encoder.forward(image.reshape(len(image), -1), train=train)
        return self.decoder.forward(image, v, train=train)

    def backward(self, dy):
        dx_rows, dv = self.decoder.backward(dy)
        return dx_rows + self.encoder.backward(dv).reshape(dx_rows.shape)


def test_eq03_eq04_encoder_decoder_end_to_end(xp, rng):
    model = TinyEncoderDecoder(rng, np.float64).to(xp)
    twin = TinyEncoderDecoder(np.random.default_rng(0), np.longdouble)
    clean = rng.uniform(0, 1, (N, ROWS, COLS))
    corrupted = clean.copy()
    corrupted[:, ROWS // 2:] = 0  # the lower half blanked, as in Figure 5
    image, clean = xp.asarray(corrupted + 0.1 * rng.standard_normal(clean.shape)), xp.asarray(clean)

    loss, dy = rmse_loss(model.forward(image, train=True), clean)
    dimage = model.backward(dy)

    f = layer_in_long_double(lambda m, image, clean: rmse_loss(m.forward(image), clean)[0], model, twin, image, clean)
    params = model.named_params()
    assert any(key.startswith("encoder/") for key in params) and any(key.startswith("decoder/") for key in params)
    check_gradients(f, {"image": image, **params}, {"image": dimage, **model.named_grads()}, bound=BOUND)
