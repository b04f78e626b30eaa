"""python -m bench.train_speed: wall time per iteration of the training loop as
`python -m mnist_half.train` runs it (mnist_half.training.EnsembleTrainer: every member's
step, drawing the batch and its noise on the host, upload, the step; on the GPU replayed
from a CUDA graph; on the CPU with the thread count chosen as in training), and the time a
whole run of the preset would take.

Unlike bench.step, which times the array work on one fixed batch, this is what a user's
training run costs per iteration, minus the periodic evaluations and checkpoints.
--contend K times it again with K busy processes beside it (bench.contend) and reports the
slowdown, the contended time over the idle one.
"""

import argparse
import json
import time

import numpy as np

from bench.contend import busy_processes
from mnist_half.cli import add_device_arg, require_positive, run_command
from mnist_half.config import make_config
from mnist_half.runs import load_split
from mnist_half.training import EnsembleTrainer
from tinynet.backend import get_xp
from tinynet.threads import ThreadChooser


def timed_steps(trainer, threads, iters):
    """Seconds per iteration over `iters` iterations (the loss read back at the end waits
    for the device), each step's time given to the thread chooser as training does."""
    trainer.pop_train_loss()  # drains the device
    start = time.perf_counter()
    for _ in range(iters):
        step_start = time.perf_counter()
        trainer.step()
        if threads is not None:
            threads.step_done(time.perf_counter() - step_start)
    trainer.pop_train_loss()
    return (time.perf_counter() - start) / iters


def measure(device="gpu", model="cnn-lstm", preset="paper", members=None, iters=1000, warmup=50, cuda_graph=True,
            contend=0):
    """The dict that --json prints: s_per_iter (idle), and with `contend` busy processes
    contended_s_per_iter and slowdown, each timed after `warmup` untimed iterations."""
    xp = get_xp(device)
    config = make_config(preset, {"model": model, "device": device, "cuda_graph": cuda_graph, "members": members})
    train_set, test_set = load_split(config, progress=False)
    trainer = EnsembleTrainer(config, xp, train_set, test_set)
    config = trainer.config  # settled for the training set's size, as the command's run is
    threads = ThreadChooser() if xp is np else None
    timed_steps(trainer, threads, warmup)
    seconds = timed_steps(trainer, threads, iters)
    graph = trainer.members[0].graph
    result = {"model": model, "device": device, "preset": preset, "members": config["members"],
              "cuda_graph": bool(graph and graph.captured), "iters": iters, "warmup": warmup,
              "s_per_iter": seconds, "run_minutes": seconds * config["iters"] / 60, "run_iters": config["iters"],
              "data": train_set.source}
    if threads is not None:
        result["threads_chosen"] = threads.threads
    if contend:
        with busy_processes(contend):
            timed_steps(trainer, threads, warmup)
            result["contended_s_per_iter"] = timed_steps(trainer, threads, iters)
        result.update(contend=contend, slowdown=result["contended_s_per_iter"] / seconds)
        if threads is not None:
            result["contended_threads_chosen"] = threads.threads
    return result


def report(r):
    members = f", {r['members']} members" if r["members"] > 1 else ""
    lines = [f"{r['model']} on {r['device']} ({r['preset']} preset{members}; cuda graph: {r['cuda_graph']}): "
             f"{r['s_per_iter'] * 1e3:.1f} ms per iteration over {r['iters']} (after {r['warmup']})"
             + (f", {r['threads_chosen']} thread(s)" if "threads_chosen" in r else "")
             + f"; the preset's {r['run_iters']:,} iterations: {r['run_minutes']:.1f} min"]
    if "contend" in r:
        lines.append(f"  with {r['contend']} busy process(es) beside it: {r['contended_s_per_iter'] * 1e3:.1f} ms "
                     f"per iteration" + (f", {r['contended_threads_chosen']} thread(s)"
                                         if "contended_threads_chosen" in r else "")
                     + f": slowdown {r['slowdown']:.2f}x")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.train_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_arg(parser, default="gpu")
    parser.add_argument("--model", choices=("cnn-lstm", "cnn-cnn"), default="cnn-lstm")
    parser.add_argument("--preset", choices=("quick", "paper"), default="paper")
    parser.add_argument("--members", type=int, help="models trained side by side (default: the preset's)")
    parser.add_argument("--iters", type=int, default=1000, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=50, help="untimed iterations first")
    parser.add_argument("--contend", type=int, default=0, metavar="K",
                        help="time again with K busy single-threaded processes beside it")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    require_positive(iters=args.iters, warmup=args.warmup, members=args.members)
    if args.contend < 0:
        parser.error("--contend must be 0 or more")
    r = measure(args.device, args.model, args.preset, args.members, args.iters, args.warmup, args.cuda_graph,
                args.contend)
    print(report(r), flush=True)
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    run_command(main)
