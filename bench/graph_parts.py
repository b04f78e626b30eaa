"""python -m bench.graph_parts: where a GPU training step of the CNN-LSTM spends its time.

Each part (the model's forward, its forward and backward, the whole training_update, the
decoder and the encoder alone, gradient clipping, Adam, the whole parameter update; then
single decoder kernels, 50 calls in one graph) is captured in a CUDA graph of its own
(tinynet.accel.gpu.graph) and replayed; the figure is the replay's time per call, in
microseconds, from CUDA events.
Batch 100, hidden 128, 5 layers, float32, as in bench.step. GPU only.
"""

import argparse
import json

import numpy as np

from mnist_half.cli import run_command
from mnist_half.config import DEFAULTS
from mnist_half.models import build_model
from mnist_half.training import training_update
from tinynet.accel.decoder_buffered import (
    lstm_layer_step_backward,
    lstm_layer_step_forward,
    output_row_backward,
    output_row_forward,
)
from tinynet.backend import get_xp
from tinynet.functional.losses import rmse_loss
from tinynet.optim import Adam, WeightAverage, clip_grad_norm, update_parameters

from .step import make_batch

KERNEL_CALLS = 50


def replay_us(cp, fn, calls=1, launches=30):
    """Microseconds per call of `fn` (which makes `calls` calls), replayed from a CUDA graph."""
    from tinynet.accel.gpu.graph import CapturedStep

    captured = CapturedStep(fn, warmup=2)
    for _ in range(3):  # two eager warm-ups, then the capture and its first replay
        captured.launch()
    if not captured.captured:
        raise RuntimeError(captured.failure)
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(launches):
        captured.launch()
    end.record()
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) * 1000 / launches / calls


def model_parts(cp, model, optimizer, average, x, y):
    """{part: function} for the model-level parts."""
    encoder, decoder = model.encoder, model.decoder
    v = cp.asarray(np.random.default_rng(2).standard_normal((len(x), decoder.thought_size), dtype=np.float32))
    params = model.named_params()
    grads = {name: value.copy() for name, value in params.items()}

    def forward_backward():
        _, dy = rmse_loss(model.forward(x, train=True), y)
        model.backward(dy)

    def decoder_both():
        decoder.backward(decoder.forward(x, v, train=True))

    def encoder_both():
        encoder.backward(encoder.forward(x[:, None], train=True))

    return {
        "forward (training mode)": lambda: model.forward(x, train=True),
        "forward + backward": forward_backward,
        "training_update (+ L2, clipping, Adam, average)": lambda: training_update(model, optimizer, x, y, 1e-6, 1.0,
                                                                                   average),
        "decoder forward": lambda: decoder.forward(x, v, train=True),
        "decoder forward + backward": decoder_both,
        "encoder forward": lambda: encoder.forward(x[:, None], train=True),
        "encoder forward + backward": encoder_both,
        "gradient clipping": lambda: clip_grad_norm(grads, 1.0),
        "Adam update": lambda: optimizer.apply(params, grads),
        "parameter update, fused (L2, clipping, Adam, average)": lambda: update_parameters(
            params, grads, model.named_weights(), optimizer, 1e-6, 1.0, average),
    }


def kernel_parts(cp, hidden=128, rows=28, batch=100):
    """{part: function making KERNEL_CALLS calls} for one decoder kernel each (an upper layer)."""
    rng = cp.random.RandomState(0)
    f32 = np.float32
    H, N, D = hidden, batch, rows
    step_input = rng.standard_normal((N, 2 * H + 1), dtype=f32)
    W = rng.standard_normal((2 * H + 1, 4 * H), dtype=f32) * 0.05
    c_prev = rng.standard_normal((N, H), dtype=f32)
    mask = (rng.random_sample((N, H)) > 0.25).astype(f32)
    h_buffer, up = cp.empty((N, 2 * H + 1), f32), cp.empty((N, H), f32)
    _, cache = lstm_layer_step_forward(step_input, W, c_prev, None, mask, h_buffer[:, :H], up)
    W_input_T, da = cp.ascontiguousarray(W[:-1].T), cp.empty((N, 4 * H), f32)
    dh = rng.standard_normal((N, 2 * H), dtype=f32)
    top, W_out, b_out = rng.standard_normal((N, H), dtype=f32), rng.standard_normal((H, D), dtype=f32), cp.zeros(D, f32)
    y, feedback = cp.empty((N, D), f32), cp.empty((N, 2 * D), f32)
    dy, dz, fed = rng.standard_normal((N, 3, D), dtype=f32), cp.empty((N, D), f32), cp.zeros((N, D), f32)

    def repeated(fn):
        return lambda: [fn() for _ in range(KERNEL_CALLS)]

    return {
        "decoder layer step, forward": repeated(
            lambda: lstm_layer_step_forward(step_input, W, c_prev, None, mask, h_buffer[:, :H], up)),
        "decoder layer step, backward": repeated(
            lambda: lstm_layer_step_backward(up, mask, dh[:, :H], c_prev, cache, W_input_T, da)),
        "output row (eq. 14), forward": repeated(lambda: output_row_forward(top, W_out, b_out, y, feedback[:, :D])),
        "output row (eq. 14), backward": repeated(lambda: output_row_backward(dy[:, 1], fed, y, W_out, dz)),
    }


def measure():
    cp = get_xp("gpu")
    config = {**DEFAULTS, "model": "cnn-lstm"}
    model = build_model("cnn-lstm", np.random.default_rng(0), config, 0.13).to(cp)
    noisy, clean = (cp.asarray(a) for a in make_batch(100))
    optimizer, average = Adam(lr=1e-3), WeightAverage(model.named_params())
    for holder in (optimizer, average):
        holder.keep_scalars_on_device(cp, np.float32)
        holder.begin_step()
    parts = model_parts(cp, model, optimizer, average, noisy, clean)
    result = {name: replay_us(cp, fn) for name, fn in parts.items()}
    result.update({name: replay_us(cp, fn, KERNEL_CALLS) for name, fn in kernel_parts(cp).items()})
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.graph_parts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    result = measure()
    for name, us in result.items():
        print(f"{name:56s} {us:9.1f} us", flush=True)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    run_command(main)
