"""python -m mnist_half.evaluate: how well a trained run redraws its held-out digits.

The run's test digits are corrupted with the fixed test seed and completed by the network,
by nearest neighbours and by PCA; the corrupted input is the floor to beat. Per method:
rmse (eq. 15 over the whole image), rmse_upper (rows 0..13, only denoised), rmse_lower
(rows 14..27, redrawn), psnr_db, and accuracy (the fraction that a digit classifier trained
on the run's clean training digits reads right; the row `clean` is its ceiling). The
definitions in full: mnist_half.evaluation.
--samples K > 1 scores the network's mean of K passes with dropout on (Monte Carlo dropout).
The table goes to stdout (with --json, one JSON object follows as the last line) and the
same object to metrics.json in the run folder.
Without --checkpoint it scores the CNN-LSTM that ships with the package, on the held-out
quarter of MNIST's 60,000 training digits (the paper's 75 % / 25 % split, seed 0): give the
folder of train-images-idx3-ubyte and train-labels-idx1-ubyte with --data.
"""

import argparse
import json

from .cli import add_device_arg, add_progress_arg, run_command
from .config import INFERENCE_BATCH, PRETRAINED
from .evaluation import evaluate_checkpoint, format_table, metrics_path
from .files import check_writable_folder, write_text
from .runs import checkpoint_path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(PRETRAINED),
                        help="checkpoint.npz of a run, or its run folder (default: the CNN-LSTM that ships with "
                             "the package; it needs --data)")
    parser.add_argument("--data", help="the folder of the digits the run trained on, where it is not the folder "
                                       "the run names (another machine; the packaged model)")
    parser.add_argument("--json", action="store_true", help="also print the report as one JSON line, last")
    add_device_arg(parser)
    parser.add_argument("--limit", type=int, help="evaluate only the first N test digits")
    parser.add_argument("--batch-size", type=int, default=INFERENCE_BATCH)
    parser.add_argument("--samples", type=int, default=1,
                        help="score the mean of this many network passes with dropout on (default 1)")
    add_progress_arg(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    checkpoint = checkpoint_path(args.checkpoint)
    # a run folder gets the metrics; the packaged model's folder is the installed package's
    out = None if checkpoint.resolve() == PRETRAINED else metrics_path(checkpoint, args.limit, args.samples)
    if out is not None:
        check_writable_folder(out.parent, "the run folder")
    report = evaluate_checkpoint(args.checkpoint, args.device, args.batch_size, not args.no_progress, args.limit,
                                 args.samples, args.data)
    print(format_table(report))
    if out is not None:
        write_text(out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    run_command(main)
