"""python -m bench.step: seconds per training iteration of the CNN-LSTM (or the CNN-CNN),
inference images per second and peak memory; with --compare-torch side by side with the
identical PyTorch model, the two run alternately, iteration by iteration, in one process
(so the drift of a shared machine hits both alike).

One iteration is what mnist_half.training's Trainer.step does once its batch is drawn
(mnist_half.training.training_update): forward, RMSE loss (eq. 15), backward, L2 (eq. 17),
gradient clipping, Adam. It runs on one fixed pre-made batch, so data preparation is not
timed. On the GPU the step is replayed from a CUDA graph after two eager warm-up steps, as
in training (--no-cuda-graph: eager). With --json the last line printed is one JSON object.

On the CPU tinynet picks its thread count as a training run does (tinynet.threads.ThreadChooser:
every usable core, or one thread when that is faster); PyTorch runs on every core, its default.
--contend K measures everything a second time with K busy processes beside it (bench.contend)
and reports each framework's slowdown, the contended time over the idle one.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np

from bench.contend import busy_processes
from mnist_half.cli import fail, run_command
from mnist_half.config import DEFAULTS, PRESETS
from mnist_half.corruption import corrupt
from mnist_half.models import IMAGE_SIZE, MODELS, build_model
from mnist_half.training import capture_step, training_update
from tinynet import dispatch
from tinynet.backend import get_xp
from tinynet.optim import Adam
from tinynet.threads import ThreadChooser

LR = PRESETS["paper"]["lr"]
L2, CLIP, DROPOUT = DEFAULTS["l2"], DEFAULTS["clip"], DEFAULTS["dropout"]
# Idle seconds before each timed run: BLAS and OpenMP worker threads spin for a while after
# their work (OpenBLAS up to ~0.1 s) and, alternating, would steal the next run's cores.
GAP_S = 0.25


def make_batch(batch_size, seed=0):
    """(noisy, clean) float32 (N, 28, 28): random images corrupted as in training (Figure 5)."""
    rng = np.random.default_rng(seed)
    clean = rng.random((batch_size, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    return corrupt(clean, rng), clean


def tinynet_path(xp, cuda_graph):
    """Which code tinynet runs: 'cupy' (+ 'cuda graph'), 'numba' kernels (with tinynet's own float32
    products where the CPU has AVX-512, else NumPy's BLAS), or plain 'numpy' (TINYNET_NUMPY=1)."""
    if xp is not np:
        return "cupy, cuda graph" if cuda_graph else "cupy, eager"
    if not dispatch.ENABLED:
        return "numpy"
    from tinynet.accel.cpu import numba_gemm

    return "numba, own avx-512 products" if numba_gemm.USEFUL else "numba, numpy's blas"


def cpu_threads():
    return len(os.sched_getaffinity(0))


def limit_threads(threads):
    """Run NumPy's BLAS, OpenMP and Numba on `threads` threads (PyTorch: torch_contender)."""
    import numba
    import threadpoolctl

    threadpoolctl.threadpool_limits(threads)
    numba.set_num_threads(threads)


def blas_info():
    """The BLAS libraries loaded, as threadpoolctl sees them: NumPy's is the one in numpy.libs."""
    import threadpoolctl

    return "; ".join(f"{lib['internal_api']} {lib['version']} in {os.path.basename(os.path.dirname(lib['filepath']))} "
                     f"({lib.get('architecture')} kernels, {lib['num_threads']} threads)"
                     for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas")


def peak_rss_mb():
    """The process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(run, sync, gap_s=0.0):
    """Seconds that `run()` takes, the device drained before and after, after `gap_s` idle."""
    sync()
    time.sleep(gap_s)
    start = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - start


class Contender:
    """One framework under test: its training iteration, its inference pass and its clock sync."""

    def __init__(self, name, train, infer, sync, chooser=None):
        self.name, self.train, self.infer, self.sync = name, train, infer, sync
        self.chooser = chooser  # tinynet.threads.ThreadChooser, fed every training step's time
        self.train_s, self.infer_s = [], []

    def time_train(self, gap_s=0.0):
        seconds = timed(self.train, self.sync, gap_s)
        if self.chooser is not None:
            self.chooser.step_done(seconds)
        return seconds

    def warm_up(self, iterations):
        """`iterations` untimed steps, and as many more as the thread chooser's first trial takes."""
        trial = 0 if self.chooser is None else len(self.chooser.choices) * (self.chooser.trial_steps + 1)
        for _ in range(max(1, iterations, trial)):
            self.time_train()
            timed(self.infer, self.sync)

    def reset(self):
        self.train_s, self.infer_s = [], []


def tinynet_contender(model_name, xp, x_host, y_host, hidden, layers, seed, cuda_graph, threads=None):
    """(contender, its initial parameters as NumPy arrays) for tinynet on module `xp`; on the
    CPU its thread count is chosen among `threads` and 1 as in training."""
    config = {"hidden": hidden, "layers": layers, "dropout": DROPOUT}
    model = build_model(model_name, np.random.default_rng(seed), config, float(y_host.mean()))
    initial = {name: value.copy() for name, value in model.named_params().items()}
    model.to(xp)
    optimizer = Adam(lr=LR)
    x, y = xp.asarray(x_host), xp.asarray(y_host)
    sync = (lambda: None) if xp is np else xp.cuda.Device().synchronize

    def update():
        return training_update(model, optimizer, x, y, L2, CLIP)

    graph = capture_step(update, xp, (optimizer,), cuda_graph=cuda_graph)  # as the Trainer; the batch stays in x, y
    run_step = update if graph is None else graph.launch

    def train():
        optimizer.begin_step()
        run_step()

    chooser = ThreadChooser(threads) if xp is np else None
    contender = Contender("tinynet", train, lambda: model.forward(x, train=False), sync, chooser)
    return contender, initial


def import_torch_models(device):
    """bench.torch_models, to be imported before any Numba kernel runs: PyTorch then loads its
    own OpenMP runtime. Imported after Numba's, it binds to the system's libgomp (same soname)
    instead, and its CPU step ran up to 10x slower on a busy machine."""
    try:
        from . import torch_models
    except ImportError as error:
        fail(error)
    torch = torch_models.torch
    if device == "gpu" and not torch.cuda.is_available():
        fail(f"--compare-torch on the GPU needs a CUDA build of PyTorch; this one ({torch.__version__}) sees no GPU")
    return torch_models


def torch_contender(torch_models, model_name, device, x_host, y_host, hidden, layers, initial, threads,
                    tf32=False):
    """The PyTorch twin, started from tinynet's initial weights.

    tf32: let cuDNN and cuBLAS round float32 inputs to TF32 on the tensor cores (PyTorch's
    default for convolutions on the GPU). Off by default, so that both frameworks compute
    in float32 and the comparison is like for like."""
    torch = torch_models.torch
    torch.set_num_threads(threads)
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    target = torch.device("cuda" if device == "gpu" else "cpu")
    model = torch_models.build_torch_twin(model_name, hidden, layers, DROPOUT)
    torch_models.load_tinynet_params(model, initial)
    model.to(target).train()
    optimizer = torch.optim.Adam(torch_models.trainable(model), lr=LR)
    x, y = torch.from_numpy(x_host).to(target), torch.from_numpy(y_host).to(target)

    def infer():
        model.eval()
        with torch.inference_mode():
            model(x)
        model.train()

    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    return Contender("pytorch", lambda: torch_models.torch_step(model, optimizer, x, y, L2, CLIP), infer, sync)


def summary(times):
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def time_turns(contenders, iters, block, gap_s):
    """Time `iters` training iterations, then `iters` inference passes, of every contender,
    alternating: a turn is `block` training iterations back to back, after `gap_s` idle."""
    for turn in range(0, iters, block):
        for contender in contenders:
            for i in range(min(block, iters - turn)):
                contender.train_s.append(contender.time_train(gap_s if i == 0 else 0.0))
    for _ in range(iters):
        for contender in contenders:
            contender.infer_s.append(timed(contender.infer, contender.sync, gap_s))


def timings(contenders, batch_size, prefix=""):
    """The result entries of the contenders' latest timings."""
    result = {}
    for framework, contender in zip(("", "torch_"), contenders):
        for key, value in summary(contender.train_s).items():
            result[f"{prefix}{framework}{key}_s_per_iter"] = value
        result[f"{prefix}{framework}images_per_s"] = batch_size / statistics.median(contender.infer_s)
        if contender.chooser is not None:
            result[f"{prefix}threads_chosen"] = contender.chooser.threads
    if len(contenders) == 2:
        result[f"{prefix}ratio"] = result[f"{prefix}median_s_per_iter"] / result[f"{prefix}torch_median_s_per_iter"]
        result[f"{prefix}paired_ratio"] = statistics.median(a / b for a, b in zip(contenders[0].train_s,
                                                                                  contenders[1].train_s))
    return result


def measure(model_name="cnn-lstm", device="cpu", batch_size=100, hidden=128, layers=5, iters=20, warmup=3,
            compare_torch=False, seed=0, gap_s=GAP_S, threads=None, cuda_graph=True, torch_tf32=False, block=1,
            contend=0):
    """Time `iters` training iterations and inference passes after `warmup` of each.

    Returns the dict that --json prints. With compare_torch the two contenders alternate,
    iteration by iteration. peak_mem_mb is read before the PyTorch model is built (with
    compare_torch it still counts PyTorch's libraries, about 300 MB).
    threads: CPU threads for every library (default: all cores this process may use; tinynet
    chooses between them and one, as in training).
    Every turn of a contender starts after `gap_s` idle seconds, so no framework's spinning
    threads linger into the other's run; a turn is `block` training iterations back to back
    (each timed on its own), as a training loop runs them.
    contend: also time everything with this many busy processes running (keys "contended_*"),
    after `warmup` more untimed iterations, and report the slowdowns.
    """
    xp = get_xp(device)
    torch_models = import_torch_models(device) if compare_torch else None
    threads = threads or cpu_threads()
    limit_threads(threads)
    x_host, y_host = make_batch(batch_size, seed)
    load_start = os.getloadavg()[0]
    tinynet, initial = tinynet_contender(model_name, xp, x_host, y_host, hidden, layers, seed, cuda_graph, threads)
    tinynet.warm_up(warmup)
    result = {"model": model_name, "device": device, "batch_size": batch_size, "hidden": hidden,
              "layers": layers, "iters": iters, "warmup": warmup, "gap_s": gap_s, "block": block,
              "threads": threads,
              "tinynet_path": tinynet_path(xp, cuda_graph), "blas": blas_info(), "peak_mem_mb": peak_rss_mb()}
    if xp is not np:
        # the pool keeps every block it ever allocated, so what it holds is its peak
        result["device_peak_mem_mb"] = xp.get_default_memory_pool().total_bytes() / 2**20
    contenders = [tinynet]
    if compare_torch:
        contenders.append(torch_contender(torch_models, model_name, device, x_host, y_host, hidden, layers,
                                          initial, threads, torch_tf32))
        result["torch_tf32"] = torch_tf32
        contenders[1].warm_up(warmup)
    time_turns(contenders, iters, block, gap_s)
    result.update(timings(contenders, batch_size))
    if compare_torch:
        result["process_peak_mem_mb"] = peak_rss_mb()  # both frameworks together
        if device == "gpu":
            torch = sys.modules["torch"]
            result["torch_device_peak_mem_mb"] = torch.cuda.max_memory_reserved() / 2**20
            result["torch_device_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if contend:
        result["contend"] = contend
        with busy_processes(contend):
            for contender in contenders:
                contender.reset()
                for _ in range(max(1, warmup)):  # the busy processes start; tinynet's chooser notices
                    contender.time_train()
            time_turns(contenders, iters, block, gap_s)
        result.update(timings(contenders, batch_size, "contended_"))
        for framework in ("", "torch_")[:len(contenders)]:
            result[f"{framework}slowdown"] = (result[f"contended_{framework}median_s_per_iter"]
                                              / result[f"{framework}median_s_per_iter"])
    result["loadavg_1m"] = [load_start, os.getloadavg()[0]]
    return result


def report(r):
    """The human-readable lines of one measurement."""
    shape = f"hidden {r['hidden']}, {r['layers']} layers" if r["model"] == "cnn-lstm" else "no LSTM"
    lines = [f"{r['model']} on {r['device']} ({r['threads']} threads), batch {r['batch_size']}, {shape}: "
             f"{r['iters']} iterations after {r['warmup']} warm-up, {r['block']} per turn, "
             f"load {r['loadavg_1m'][0]:.2f} -> {r['loadavg_1m'][1]:.2f}", f"  BLAS: {r['blas']}"]
    frameworks = [(f"tinynet ({r['tinynet_path']})", "")] + ([("pytorch", "torch_")] if "ratio" in r else [])
    for name, prefix in frameworks:
        lines.append(f"  {name:15s} train {r[prefix + 'median_s_per_iter']:.4f} s/iter (min "
                     f"{r[prefix + 'min_s_per_iter']:.4f}, max {r[prefix + 'max_s_per_iter']:.4f}), "
                     f"inference {r[prefix + 'images_per_s']:.0f} images/s")
    memory = f"  peak host RSS {r['peak_mem_mb']:.0f} MB"
    if "process_peak_mem_mb" in r:
        memory += f" after tinynet's runs (PyTorch's libraries loaded), {r['process_peak_mem_mb']:.0f} MB after both"
    lines.append(memory)
    if "device_peak_mem_mb" in r:
        lines.append(f"  GPU memory held at peak: tinynet {r['device_peak_mem_mb']:.0f} MB (CuPy pool)"
                     + (f", pytorch {r['torch_device_peak_mem_mb']:.0f} MB reserved "
                        f"({r['torch_device_peak_allocated_mb']:.0f} MB allocated)" if "ratio" in r else ""))
    if "ratio" in r:
        lines.append(f"  ratio tinynet / pytorch: {r['ratio']:.3f} (medians), {r['paired_ratio']:.3f} "
                     "(median of the per-iteration ratios)")
    if "threads_chosen" in r:
        lines.append(f"  tinynet's thread count (chosen among {r['threads']} and 1): {r['threads_chosen']}")
    if "contend" in r:
        lines.append(f"  with {r['contend']} busy process(es) beside it:")
        for name, prefix in frameworks:
            chosen = f", {r['contended_threads_chosen']} thread(s)" if not prefix and "threads_chosen" in r else ""
            lines.append(f"  {name:15s} train {r['contended_' + prefix + 'median_s_per_iter']:.4f} s/iter "
                         f"(min {r['contended_' + prefix + 'min_s_per_iter']:.4f}){chosen}: slowdown "
                         f"{r[prefix + 'slowdown']:.2f}x")
    return "\n".join(lines)


def add_common_args(parser):
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--model", choices=tuple(MODELS), default="cnn-lstm")
    parser.add_argument("--layers", type=int, default=DEFAULTS["layers"], help="LSTM layers")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    parser.add_argument("--compare-torch", action="store_true",
                        help="also time the identical PyTorch model, alternating with tinynet")
    parser.add_argument("--threads", type=int, help="CPU threads of BLAS, Numba and PyTorch (default: all cores)")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false",
                        help="GPU: run every step eagerly instead of replaying a captured CUDA graph")
    parser.add_argument("--torch-tf32", action="store_true",
                        help="GPU: let PyTorch use TF32 tensor cores (its default for convolutions); "
                             "off, both compute in float32")
    parser.add_argument("--gap", type=float, default=GAP_S,
                        help="idle seconds before each turn of a framework (lets spinning worker threads sleep)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.step", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--batch-size", type=int, default=PRESETS["paper"]["batch_size"])
    parser.add_argument("--hidden", type=int, default=DEFAULTS["hidden"], help="LSTM hidden size")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations")
    parser.add_argument("--block", type=int, default=1,
                        help="training iterations per turn, back to back (default 1: the frameworks alternate "
                             "every iteration)")
    parser.add_argument("--contend", type=int, default=0, metavar="K",
                        help="measure again with K busy single-threaded processes beside it, and report the "
                             "slowdowns")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    for key in ("batch_size", "hidden", "layers", "iters", "block"):
        if getattr(args, key) <= 0:
            parser.error(f"--{key.replace('_', '-')} must be positive")
    if args.contend < 0:
        parser.error("--contend must be 0 or more")
    return args


def main(argv=None):
    args = parse_args(argv)
    result = measure(args.model, args.device, args.batch_size, args.hidden, args.layers, args.iters,
                     args.warmup, args.compare_torch, gap_s=args.gap, threads=args.threads,
                     cuda_graph=args.cuda_graph, torch_tf32=args.torch_tf32, block=args.block,
                     contend=args.contend)
    print(report(result), flush=True)
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    run_command(main)
