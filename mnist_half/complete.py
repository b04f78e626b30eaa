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
--samples K > 1 averages K passes with dropout on (Monte Carlo dropout) instead of the one
deterministic pass: a lower RMSE on held-out digits (docs/training.md), softer lower halves.
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tinynet.backend import DEVICES, get_xp, to_numpy

from .checkpoint import CheckpointError
from .cli import UsageError, run_command
from .data import HEIGHT, PIXEL_MAX, WIDTH
from .models import load_trained

PNG_MAX_16BIT = 65535
GRAY_16BIT = ("I;16", "I;16B", "I")  # the modes PIL gives 16-bit grayscale PNGs
# ITU-R BT.601 luma, the weights PIL's convert("L") uses.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
MODEL_LABELS = {"cnn-lstm": "CNN-LSTM", "cnn-cnn": "CNN-CNN"}
DROPOUT_SAMPLES_SEED = 0  # the masks of --samples, fixed so that a completion repeats


def complete_images(model, images, xp, batch_size=256, samples=1, progress=False):
    """The model's completions (N, 28, 28) float32 in [0, 1] of `images` (N, 28, 28) float32,
    fed as they are, `batch_size` at a time, on array module `xp`.

    samples > 1: the mean of that many passes with dropout on (Monte Carlo dropout), the
    masks drawn from DROPOUT_SAMPLES_SEED.
    """
    if samples > 1:
        model.seed_dropout(DROPOUT_SAMPLES_SEED)
    out = np.empty(images.shape, dtype=np.float32)
    for start in tqdm(range(0, len(images), batch_size), desc="network", unit="batch", disable=not progress,
                      leave=False, dynamic_ncols=True):
        batch = xp.asarray(images[start:start + batch_size])
        if samples == 1:
            completed = model.forward(batch, train=False)
        else:
            completed = sum(model.forward(batch, train=True) for _ in range(samples)) / samples
        out[start:start + len(batch)] = to_numpy(completed)
    return out


def check_samples(samples):
    """A --samples value below 1 is a UsageError."""
    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")


def load_model(path, xp):
    """(model, meta) of checkpoint `path`; a checkpoint of no known model is a UsageError."""
    try:
        return load_trained(path, xp)
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError) as error:
        raise UsageError(f"{path}: not a checkpoint of a known model ({type(error).__name__}: {error})") from None


# --- reading -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """How the input was stored, so the output can be stored the same way.

    kind: 'npy', 'png' or 'folder'; single: a .npy of one (28, 28) image;
    uint8: a .npy of uint8 pixels; names: the PNG file names of a folder.
    """

    kind: str
    single: bool = False
    uint8: bool = False
    names: tuple = ()


def input_kind(path):
    if not path.exists():
        raise UsageError(f"input {path} does not exist")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".npy", ".png"):
        return suffix[1:]
    raise UsageError(f"input {path}: expected a .npy array, a .png image or a folder of .png images")


def read_npy(path):
    """(images (N, 28, 28) float32 in [0, 1], Layout) from a .npy array."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise UsageError(f"{path}: not a readable .npy array ({error})") from None
    if not isinstance(array, np.ndarray):
        raise UsageError(f"{path}: holds an archive of several arrays, expected one .npy array")
    if not (array.shape == (HEIGHT, WIDTH) or (array.ndim == 3 and array.shape[1:] == (HEIGHT, WIDTH))):
        raise UsageError(f"{path}: shape {array.shape}, expected (N, {HEIGHT}, {WIDTH}) or ({HEIGHT}, {WIDTH})")
    if array.size == 0:
        raise UsageError(f"{path}: holds no images (shape {array.shape})")
    single = array.ndim == 2
    if array.dtype == np.uint8:
        images = array.astype(np.float32) / PIXEL_MAX
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise UsageError(f"{path}: holds NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise UsageError(f"{path}: float values span {array.min():g}..{array.max():g}, expected [0, 1]")
        images = array.astype(np.float32)
    else:
        raise UsageError(f"{path}: dtype {array.dtype}, expected uint8 (0..255) or float (0..1)")
    return images.reshape(-1, HEIGHT, WIDTH), Layout("npy", single=single, uint8=array.dtype == np.uint8)


def read_png(path):
    """One 28x28 image, float32 in [0, 1]: grayscale as is, colour as luminance; alpha
    composites over black, the background of MNIST digits."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in GRAY_16BIT + ("L", "LA", "RGB", "RGBA"):  # palette, bilevel, CMYK, ...
                image = image.convert("RGBA")
            mode, pixels = image.mode, np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UsageError(f"{path}: not a readable PNG image ({error})") from None
    if pixels.shape[:2] != (HEIGHT, WIDTH):
        raise UsageError(f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]} pixels, expected "
                         f"{WIDTH}x{HEIGHT} (resize it first, keeping the digit centred)")
    if mode in GRAY_16BIT:
        return pixels.astype(np.float32) / PNG_MAX_16BIT
    x = pixels.astype(np.float32) / PIXEL_MAX
    gray = x if mode == "L" else x[..., 0] if mode == "LA" else x[..., :3] @ LUMA
    if mode in ("LA", "RGBA"):
        gray = gray * x[..., -1]
    return np.clip(gray, 0, 1)


def read_folder(path):
    """(images (N, 28, 28) float32, Layout) from the .png files of a folder, sorted by name."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not files:
        raise UsageError(f"input folder {path} holds no .png images")
    return np.stack([read_png(p) for p in files]), Layout("folder", names=tuple(p.name for p in files))


def read_input(path):
    """(images (N, 28, 28) float32 in [0, 1], Layout) from a .npy, a .png or a folder of PNGs."""
    kind = input_kind(path)
    if kind == "npy":
        return read_npy(path)
    if kind == "png":
        return read_png(path)[None], Layout("png")
    return read_folder(path)


# --- writing -------------------------------------------------------------------------------

def check_output(path, input_path, layout):
    """A UsageError unless `path` can take output of the input's form without overwriting it."""
    if path.resolve() == input_path.resolve():
        raise UsageError(f"output {path} is the input itself: choose another output path")
    if layout.kind == "folder":
        if path.suffix.lower() in (".npy", ".png") or path.is_file():
            raise UsageError(f"output {path}: the input is a folder of PNGs, so the output must be a folder")
        return
    suffix = f".{layout.kind}"
    if path.suffix.lower() != suffix:
        raise UsageError(f"output {path}: the input is a {suffix} file, so the output must end in {suffix}")
    if path.is_dir():
        raise UsageError(f"output {path} is a folder: expected a {suffix} file path")


def to_uint8(images):
    """[0, 1] floats as 0..255 pixels (rounded)."""
    return np.rint(np.clip(images, 0, 1) * PIXEL_MAX).astype(np.uint8)


def write_png(path, image):
    Image.fromarray(to_uint8(image)).save(path, format="PNG")


def write_output(path, images, layout):
    """Store `images` (N, 28, 28) float32 at `path` in the form `layout` describes."""
    if layout.kind == "npy":
        array = to_uint8(images) if layout.uint8 else images
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, array[0] if layout.single else array)
    elif layout.kind == "png":
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, images[0])
    else:
        path.mkdir(parents=True, exist_ok=True)
        for name, image in zip(layout.names, images):
            write_png(path / name, image)


# --- the command ---------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.complete", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a run's checkpoint.npz")
    parser.add_argument("--input", required=True, help="a .npy array, a .png image or a folder of PNGs")
    parser.add_argument("--output", required=True, help="where the completed images go, in the input's form")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=1,
                        help="average this many passes with dropout on (default 1: one deterministic pass)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    check_samples(args.samples)
    input_path, output_path = Path(args.input), Path(args.output)
    images, layout = read_input(input_path)
    check_output(output_path, input_path, layout)
    xp = get_xp(args.device)
    model, meta = load_model(args.checkpoint, xp)
    completed = complete_images(model, images, xp, args.batch_size, args.samples)
    write_output(output_path, completed, layout)
    label = MODEL_LABELS[meta["config"]["model"]]
    print(f"wrote {len(completed)} completed image{'s' * (len(completed) != 1)} to {output_path} "
          f"({label}, {args.checkpoint}, iteration {meta.get('iteration', '?')}"
          f"{f', mean of {args.samples} dropout samples' if args.samples > 1 else ''})")


if __name__ == "__main__":
    run_command(main)
