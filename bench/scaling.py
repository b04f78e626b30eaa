"""python -m bench.scaling: seconds per training iteration against the batch size (at hidden
128) and against the LSTM's hidden size (at batch 100), printed as markdown tables, so the
growth of the cost is visible. Each row is one bench.step measurement."""

import argparse

from mnist_half.cli import run_command

from .step import add_common_args, measure

BATCH_SIZES = (25, 50, 100, 200, 400)
HIDDEN_SIZES = (64, 128, 256)
BASE_BATCH, BASE_HIDDEN = 100, 128


def table_header(swept, compare_torch):
    columns = [swept, "tinynet s/iter (min-max)", "ms/image"]
    if compare_torch:
        columns += ["pytorch s/iter (min-max)", "ratio"]
    columns.append("load 1 min")
    return f"| {' | '.join(columns)} |\n|{'---|' * len(columns)}"


def table_row(value, r):
    cells = [str(value), f"{r['median_s_per_iter']:.4f} ({r['min_s_per_iter']:.4f}-{r['max_s_per_iter']:.4f})",
             f"{1000 * r['median_s_per_iter'] / r['batch_size']:.3f}"]
    if "ratio" in r:
        torch_range = f"{r['torch_min_s_per_iter']:.4f}-{r['torch_max_s_per_iter']:.4f}"
        cells += [f"{r['torch_median_s_per_iter']:.4f} ({torch_range})", f"{r['ratio']:.2f}"]
    cells.append(f"{r['loadavg_1m'][0]:.1f}-{r['loadavg_1m'][1]:.1f}")
    return f"| {' | '.join(cells)} |"


def sweep(title, swept, values, settings, args):
    print(f"\n### {title}\n\n{table_header(swept, args.compare_torch)}", flush=True)
    for value in values:
        r = measure(args.model, args.device, iters=args.iters, warmup=args.warmup, layers=args.layers,
                    compare_torch=args.compare_torch, gap_s=args.gap,
                    threads=args.threads, cuda_graph=args.cuda_graph, torch_tf32=args.torch_tf32,
                    **settings(value))
        print(table_row(value, r), flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__)
    add_common_args(parser)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per row")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    what = f"{args.model} on {args.device}, {args.iters} iterations per row after {args.warmup} warm-up"
    sweep(f"Batch size ({what}, hidden {BASE_HIDDEN}, {args.layers} layers)", "batch", BATCH_SIZES,
          lambda n: {"batch_size": n, "hidden": BASE_HIDDEN}, args)
    if args.model == "cnn-lstm":  # the CNN-CNN has no hidden size
        sweep(f"LSTM hidden size ({what}, batch {BASE_BATCH}, {args.layers} layers)", "hidden", HIDDEN_SIZES,
              lambda h: {"batch_size": BASE_BATCH, "hidden": h}, args)


if __name__ == "__main__":
    run_command(main)
