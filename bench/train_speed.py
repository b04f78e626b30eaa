"""python -m bench.train_speed: wall time per iteration of mnist_half.training's Trainer, the
whole iteration (drawing the batch and its noise on the host, upload, the step; on the GPU
replayed from a CUDA graph), and the time the paper's run (500k iterations) would take.

Unlike bench.step, which times the array work on one fixed batch, this is what a user's
training run costs per iteration, minus the periodic evaluations and checkpoints.
"""

import argparse
import json
import time

from mnist_half.cli import run_command
from mnist_half.config import DEFAULTS, PRESETS
from mnist_half.runs import load_split
from mnist_half.training import Trainer
from tinynet.backend import get_xp

PAPER_ITERS = PRESETS["paper"]["iters"]


def measure(device="gpu", model="cnn-lstm", iters=1000, warmup=50, cuda_graph=True):
    xp = get_xp(device)
    config = {**DEFAULTS, **PRESETS["paper"], "model": model, "device": device, "cuda_graph": cuda_graph}
    train_set, test_set = load_split(config, progress=False)
    trainer = Trainer(config, xp, train_set, test_set)
    for _ in range(warmup):
        trainer.step()
    trainer.pop_train_loss()  # drains the device
    start = time.perf_counter()
    for _ in range(iters):
        trainer.step()
    loss = trainer.pop_train_loss()  # the read-back waits for the last step
    seconds = (time.perf_counter() - start) / iters
    return {"model": model, "device": device, "cuda_graph": bool(trainer.graph and trainer.graph.captured),
            "iters": iters, "warmup": warmup, "s_per_iter": seconds, "mean_train_loss": loss,
            "paper_run_minutes": seconds * PAPER_ITERS / 60, "data": train_set.source}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.train_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="gpu")
    parser.add_argument("--model", choices=("cnn-lstm", "cnn-cnn"), default="cnn-lstm")
    parser.add_argument("--iters", type=int, default=1000, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=50, help="untimed iterations first")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    r = measure(args.device, args.model, args.iters, args.warmup, args.cuda_graph)
    print(f"{r['model']} on {r['device']} (cuda graph: {r['cuda_graph']}): {r['s_per_iter'] * 1e3:.2f} ms per "
          f"iteration over {r['iters']} (after {r['warmup']}); the paper's {PAPER_ITERS:,} iterations: "
          f"{r['paper_run_minutes']:.1f} min", flush=True)
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    run_command(main)
