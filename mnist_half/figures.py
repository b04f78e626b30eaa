"""python -m mnist_half.figures: the paper's Figures 5, 6 and 7 from one or two training runs.

figure5.png  the corruption of the training data (section 5.1): original, lower half
             blanked, noise added, for a few test digits;
figure6.png  each run's training loss over the iterations, faint, with a fitted log trend
             line a ln(iteration) + b in bold and the held-out loss as points (section 6);
figure7.png  for the same fixed test digits: Input, CNN-CNN, CNN-LSTM, Original (section 6),
             with the columns of whichever models the runs hold.
The runs (at most one per model) must share their data, split and noise.
"""

import argparse

from .cli import require_positive, run_command
from .files import check_writable_folder
from .plots import FIGURE7_DIGITS, all_figures


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (at most one per model)")
    parser.add_argument("--out", required=True, help="folder for figure5.png, figure6.png, figure7.png")
    parser.add_argument("--count", type=int, default=FIGURE7_DIGITS, help="digits in Figure 7")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    require_positive(count=args.count)
    check_writable_folder(args.out, "--out")
    runs = all_figures(args.runs, args.out, args.count)
    print(f"wrote {args.out}/figure5.png, figure6.png, figure7.png ({', '.join(run.label for run in runs)})")


if __name__ == "__main__":
    run_command(main)
