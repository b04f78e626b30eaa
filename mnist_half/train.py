"""python -m mnist_half.train: train the CNN-LSTM (or the CNN-CNN baseline) on half-blanked,
noisy MNIST digits (section 5), with checkpoints that survive a crash or Ctrl-C.

The run folder gets checkpoint.npz (weights, optimizer state, iteration, config),
log.csv (iteration, train loss, periodic test loss), metrics.json and figures.
"""

import argparse
import json
import sys

from tinynet.optim import OPTIMIZERS

from .cli import EXIT_INTERRUPTED, UsageError, add_device_arg, add_progress_arg, run_command
from .config import (
    CHECKPOINT,
    DEFAULTS,
    FEW_DIGITS,
    LOG,
    METRICS_FILE,
    PRESETS,
    QUICK_ON_GPU,
    QUICK_ON_MANY_DIGITS,
    make_config,
)
from .corruption import NOISES
from .evaluation import evaluate_checkpoint, format_table
from .files import RunLock, check_writable_folder, remove_stale_temporaries, write_text
from .models import MODELS
from .plots import figure6, figure7
from .runs import resolve_out_dir, resume_config
from .training import train

# The flags whose values go into the config (a flag left out takes the preset's or the default).
CONFIG_FLAGS = ("device", "model", "noise", "hidden", "layers", "literal_eq13", "seed", "data", "official_split",
                "checkpoint_every", "iters", "batch_size", "optimizer", "lr", "cuda_graph", "members",
                "target_blend", "target_neighbours", "dropout")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_arg(parser, DEFAULTS["device"])
    parser.add_argument("--model", choices=tuple(MODELS))
    quick, paper, many = PRESETS["quick"], PRESETS["paper"], QUICK_ON_MANY_DIGITS
    parser.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULTS["preset"],
                        help=f"quick: on a CPU one model of {quick['iters']:,} iterations ({many['iters']:,} on "
                             f"{FEW_DIGITS:,} training digits or more), at most 15 min on a 2-core CPU; on a GPU "
                             f"{QUICK_ON_GPU['members']} members of {QUICK_ON_GPU['iters']:,}; paper: "
                             f"{paper['iters']:,} iterations (section 5.3), ~27 min on a recent GPU, wants full MNIST")
    parser.add_argument("--iters", type=int, help="iterations (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="default: the preset's (100)")
    parser.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="default: the preset's (adam)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    parser.add_argument("--noise", choices=tuple(NOISES),
                        help="sp: salt-and-pepper; gauss: white Gaussian noise")
    parser.add_argument("--hidden", type=int, help="LSTM hidden size")
    parser.add_argument("--layers", type=int, help="LSTM layers")
    parser.add_argument("--literal-eq13", action="store_true", default=None,
                        help="h_t = tanh(C_t) * i_t as printed (eq. 13)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--dropout", type=float,
                        help=f"dropout rate (default {DEFAULTS['dropout']}, in the quick preset {many['dropout']} on "
                             f"{FEW_DIGITS:,} training digits or more)")
    parser.add_argument("--target-blend", type=float,
                        help="blend of each training digit's lower-half target with its nearest neighbours' "
                             f"(0: the digit itself; default: the preset's, in the quick preset "
                             f"{quick['target_blend']} on fewer than {FEW_DIGITS:,} training digits)")
    parser.add_argument("--target-neighbours", type=int,
                        help=f"how many neighbours --target-blend averages (default {DEFAULTS['target_neighbours']})")
    parser.add_argument("--members", type=int,
                        help="train this many models side by side (seeds S, S+1, ...) and complete with their mean "
                             "(default: the preset's)")
    parser.add_argument("--data", help="folder with the four MNIST IDX files (else env MNIST_HALF_DATA, "
                                       "the cache, a download, or the embedded 5,000 digits)")
    parser.add_argument("--official-split", action="store_true", default=None, help="keep MNIST's 60k/10k split")
    parser.add_argument("--out", help="run folder (default runs/<model>, never overwriting)")
    parser.add_argument("--checkpoint-every", type=int)
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out exactly as it was trained (flags other than --iters, "
                             "--checkpoint-every, --device and --no-cuda-graph must be left out or agree with it)")
    parser.add_argument("--reset-optimizer", action="store_true",
                        help="with --resume: continue a checkpoint that lacks the optimizer's state, the optimizer "
                             "started afresh (not an exact continuation)")
    parser.add_argument("--no-cuda-graph", dest="cuda_graph", action="store_false", default=None,
                        help="GPU: run every step eagerly instead of replaying a captured CUDA graph")
    add_progress_arg(parser)
    return parser.parse_args(argv)


def given_flags(args):
    """{config key: value} of the flags typed on the command line (a flag left out is None)."""
    return {key: getattr(args, key) for key in CONFIG_FLAGS if getattr(args, key) is not None}


def config_from_args(args):
    """The run's config: the preset's values, then the flags given."""
    return make_config(args.preset, given_flags(args))


def report_run(out_dir, device, progress=True):
    """metrics.json (mnist_half.evaluation) and this run's Figures 6 and 7."""
    report = evaluate_checkpoint(out_dir / CHECKPOINT, device, progress=progress)
    write_text(out_dir / METRICS_FILE, json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    figure6([out_dir], out_dir / "figure6.png")
    figure7([out_dir], out_dir / "figure7.png", device=device)


def main(argv=None):
    """Checks first (flags, --out, the checkpoint to resume), then the run folder is locked
    (a second training into it is refused, naming this process), stale temporary files of
    a killed run removed, the run trained and reported."""
    args = parse_args(argv)
    if args.reset_optimizer and not args.resume:
        raise UsageError("--reset-optimizer goes with --resume")
    config = config_from_args(args)
    out_dir = resolve_out_dir(config, args.out, args.resume)
    check_writable_folder(out_dir, "--out")
    if args.resume:  # the saved run's config, with this command's iterations and device
        config = resume_config(out_dir / CHECKPOINT, config, given_flags(args), args.reset_optimizer)
    with RunLock(out_dir):
        remove_stale_temporaries(out_dir, CHECKPOINT)
        trainer = train(config, out_dir, resume=args.resume, progress=not args.no_progress,
                        reset_optimizer=args.reset_optimizer)
        try:
            report_run(out_dir, config["device"], progress=not args.no_progress)
        except KeyboardInterrupt:
            print(f"\ninterrupted during the final evaluation: {out_dir / CHECKPOINT} is complete (iteration "
                  f"{trainer.iteration}); its metrics: python -m mnist_half.evaluate --checkpoint "
                  f"{out_dir / CHECKPOINT}", file=sys.stderr)
            raise SystemExit(EXIT_INTERRUPTED) from None
    print(f"wrote {out_dir}/ ({CHECKPOINT}, {LOG}, {METRICS_FILE}, figure6.png, figure7.png) "
          f"after {trainer.iteration} iterations")
    other = "cnn-cnn" if config["model"] == "cnn-lstm" else "cnn-lstm"
    print(f"next: python -m mnist_half.evaluate --checkpoint {out_dir / CHECKPOINT}\n"
          f"      python -m mnist_half.train --model {other}   # then compare both:\n"
          f"      python -m mnist_half.figures --runs {out_dir} runs/{other} --out figures")


if __name__ == "__main__":
    run_command(main)
