"""python -m mnist_half.complete: denoise a user's digits and redraw their missing lower half
with a trained model (eq. 3: v = f_encoder(image); eq. 4: image_cleaned = f_decoder(v, image)).

The images are used exactly as given: they should already look like the training inputs
of Figure 5 (white digit on black, lower half blanked, noisy); nothing is corrupted again.
--input is one of
  - a .npy array (N, 28, 28) or (28, 28), float in [0, 1] or uint8 in 0..255;
  - a .png image, 28x28, grayscale or RGB(A) (luminance; transparent pixels count as black);
  - a folder of such .png images.
--output takes the same form: a .npy of the same shape (uint8 in, uint8 out; float in, float32
out), a .png, or a folder of PNGs with the same file names.
Without --checkpoint the CNN-LSTM that ships with the package completes them (trained on
MNIST's 60,000 training digits; mnist_half/pretrained/README.md).
--samples K > 1 averages K passes with dropout on (Monte Carlo dropout) instead of the one
deterministic pass: a lower RMSE on held-out digits (docs/training.md, "Ensembles, Monte Carlo
dropout and snapshots"), softer lower halves.
"""

import argparse
from pathlib import Path

from tinynet.backend import get_xp

from .cli import add_device_arg, require_positive, require_samples, run_command
from .config import INFERENCE_BATCH, PRETRAINED
from .image_files import check_output, read_input, write_output
from .models import MODEL_LABELS, complete_images
from .runs import load_trained, trained_for


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.complete", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(PRETRAINED),
                        help="a run's checkpoint.npz (default: the CNN-LSTM that ships with the package)")
    parser.add_argument("--input", required=True, help="a .npy array, a .png image or a folder of PNGs")
    parser.add_argument("--output", required=True, help="where the completed images go, in the input's form")
    add_device_arg(parser)
    parser.add_argument("--batch-size", type=int, default=INFERENCE_BATCH)
    parser.add_argument("--samples", type=int, default=1,
                        help="average this many passes with dropout on (default 1: one deterministic pass)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    require_positive(batch_size=args.batch_size)
    require_samples(args.samples)
    input_path, output_path = Path(args.input), Path(args.output)
    images, input_format = read_input(input_path)
    check_output(output_path, input_path, input_format)
    xp = get_xp(args.device)
    model, meta = load_trained(args.checkpoint, xp)
    completed = complete_images(model, images, xp, args.batch_size, args.samples)
    write_output(output_path, completed, input_format, inputs=[input_path])
    label = MODEL_LABELS[meta["config"]["model"]]
    print(f"wrote {len(completed)} completed image{'s' * (len(completed) != 1)} to {output_path} "
          f"({label}, {args.checkpoint}, {trained_for(meta)}"
          f"{f', mean of {args.samples} dropout samples' if args.samples > 1 else ''})")


if __name__ == "__main__":
    run_command(main)
