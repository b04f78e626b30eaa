"""python -m bench.negligible: what this CPU pays for arithmetic on subnormal floats, the
cost that tinynet.negligible's flush keeps out of a training.

A long training leaves dead encoder channels (40 of conv2's 64 in one run of 28,000
iterations) whose weights have shrunk under eq. (17)'s term to magnitudes between float32's
smallest subnormal and 2^-103, where their products with activations are subnormal (the
flush zeroes everything below 2^-63 after every update). This puts them
back on purpose and times the CNN-LSTM's forward and backward on one batch (no update, so
nothing flushes them) three ways: the dead channels' weights at 0 (what the flush leaves),
at magnitudes log-uniform over [2^-130, 2^-103] (what a training without the flush carries),
and every weight live (the initialisation). Each time is the median of --iters calls, the
three alternating call by call. The second over the first is the slowdown the flush
prevents on this CPU: some x86 CPUs take a microcode assist per subnormal operand or result.
"""

import argparse
import statistics
import time

import numpy as np

from bench.step import make_batch
from mnist_half.config import DEFAULTS
from mnist_half.models import build_model
from tinynet.functional.losses import rmse_loss
from tinynet.threads import set_threads, usable_cores

DEAD_CHANNELS = 40  # of conv2's 64 output channels, as in the run above
# float32: subnormals down to 2^-149; 2^-103 times an activation of 2^-23 or less is subnormal
SMALLEST_EXPONENT, LARGEST_EXPONENT = -130, -103


def dead_channel_weights(w, channels, rng, magnitudes):
    """w with the first `channels` output channels set to `magnitudes` ('zero' or 'tiny')."""
    w = w.copy()
    if magnitudes == "zero":
        w[:channels] = 0
    else:
        exponents = rng.uniform(SMALLEST_EXPONENT, LARGEST_EXPONENT, size=w[:channels].shape)
        w[:channels] = np.sign(rng.standard_normal(exponents.shape)) * np.exp2(exponents)
    return w


def measure(batch_size=100, iters=10, threads=None, seed=0):
    """{case: median seconds of one forward + backward}, for 'dead at 0', 'dead tiny', 'all live'."""
    set_threads(threads or usable_cores())
    rng = np.random.default_rng(seed)
    x, y = make_batch(batch_size, seed)
    model = build_model("cnn-lstm", rng, {**DEFAULTS, "dropout": 0.0}, float(y.mean()))
    conv2 = model.encoder.children()["conv2"].params
    live = conv2["W"].copy()
    cases = {"dead at 0": dead_channel_weights(live, DEAD_CHANNELS, rng, "zero"),
             "dead tiny": dead_channel_weights(live, DEAD_CHANNELS, rng, "tiny"),
             "all live": live}
    times = {case: [] for case in cases}
    for turn in range(iters + 1):  # the first turn warms up
        for case, weights in cases.items():
            conv2["W"][...] = weights
            start = time.perf_counter()
            _, dy = rmse_loss(model.forward(x, train=True), y)
            model.backward(dy)
            if turn:
                times[case].append(time.perf_counter() - start)
    return {case: statistics.median(seconds) for case, seconds in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.negligible", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--iters", type=int, default=10, help="timed calls of each case")
    parser.add_argument("--threads", type=int, help="CPU threads (default: every usable core)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.iters < 1:
        parser.error("--batch-size and --iters must be at least 1")
    result = measure(args.batch_size, args.iters, args.threads)
    for case, seconds in result.items():
        print(f"{case:10s} {seconds * 1000:8.1f} ms per forward + backward")
    print(f"slowdown from subnormal weights: {result['dead tiny'] / result['dead at 0']:.2f}x")


if __name__ == "__main__":
    main()
