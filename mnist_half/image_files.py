"""The image files that `python -m mnist_half.complete` reads and writes.

A set of digits is one of
  - a .npy array (N, 28, 28) or (28, 28), float in [0, 1] or uint8 in 0..255;
  - a .png image, 28x28, grayscale or RGB(A) (luminance; transparent pixels count as black);
  - a folder of such .png images.
The output takes the input's form (InputFormat): a .npy of the same shape (uint8 in, uint8
out; float in, float32 out), a .png, or a folder of PNGs with the same file names.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .cli import UsageError
from .data import HEIGHT, PIXEL_MAX, WIDTH
from .files import atomic_output, check_writable_folder, load_npy, make_folder, refuse_overwriting, save_npy

PNG_MAX_16BIT = 65535
GRAY_16BIT = ("I;16", "I;16B", "I")  # the modes PIL gives 16-bit grayscale PNGs
# ITU-R BT.601 luma, the weights PIL's convert("L") uses.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --- reading -------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputFormat:
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
    """(images (N, 28, 28) float32 in [0, 1], InputFormat) from a .npy array (read through
    mnist_half.files.load_npy: its header is checked before anything is allocated)."""
    array = load_npy(path)
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
    return images.reshape(-1, HEIGHT, WIDTH), InputFormat("npy", single=single, uint8=array.dtype == np.uint8)


def read_png(path):
    """One 28x28 image, float32 in [0, 1]: grayscale as is, colour as luminance; alpha
    composites over black, the background of MNIST digits. The size in the PNG's header is
    checked before its pixels are decoded."""
    try:
        with Image.open(path) as image:
            if image.size != (WIDTH, HEIGHT):
                raise UsageError(f"{path}: image is {image.size[0]}x{image.size[1]} pixels, expected "
                                 f"{WIDTH}x{HEIGHT} (resize it first, keeping the digit centred)")
            image.load()
            if image.mode not in GRAY_16BIT + ("L", "LA", "RGB", "RGBA"):  # palette, bilevel, CMYK, ...
                image = image.convert("RGBA")
            mode, pixels = image.mode, np.asarray(image)
    except UsageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise UsageError(f"{path}: not a readable PNG image ({error})") from None
    if mode in GRAY_16BIT:
        return pixels.astype(np.float32) / PNG_MAX_16BIT
    x = pixels.astype(np.float32) / PIXEL_MAX
    gray = x if mode == "L" else x[..., 0] if mode == "LA" else x[..., :3] @ LUMA
    if mode in ("LA", "RGBA"):
        gray = gray * x[..., -1]
    return np.clip(gray, 0, 1)


def read_folder(path):
    """(images (N, 28, 28) float32, InputFormat) from the .png files of a folder, sorted by name."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not files:
        raise UsageError(f"input folder {path} holds no .png images")
    return np.stack([read_png(p) for p in files]), InputFormat("folder", names=tuple(p.name for p in files))


def read_input(path):
    """(images (N, 28, 28) float32 in [0, 1], InputFormat) from a .npy, a .png or a folder of PNGs."""
    kind = input_kind(path)
    if kind == "npy":
        return read_npy(path)
    if kind == "png":
        return read_png(path)[None], InputFormat("png")
    return read_folder(path)


# --- writing -------------------------------------------------------------------------------

def check_output(path, input_path, input_format):
    """A UsageError unless `path` can take output of the input's form without overwriting it
    (the same file by any name, a hard link included) and its folder can be written."""
    if path.resolve() == input_path.resolve():
        raise UsageError(f"output {path} is the input itself: choose another output path")
    refuse_overwriting(path, [input_path])
    if input_format.kind == "folder":
        if path.suffix.lower() in (".npy", ".png") or path.is_file():
            raise UsageError(f"output {path}: the input is a folder of PNGs, so the output must be a folder")
        check_writable_folder(path, "output folder")
        return
    suffix = f".{input_format.kind}"
    if path.suffix.lower() != suffix:
        raise UsageError(f"output {path}: the input is a {suffix} file, so the output must end in {suffix}")
    if path.is_dir():
        raise UsageError(f"output {path} is a folder: expected a {suffix} file path")
    check_writable_folder(path.parent, f"output {path}: its folder")


def to_uint8(images):
    """[0, 1] floats as 0..255 pixels (rounded)."""
    return np.rint(np.clip(images, 0, 1) * PIXEL_MAX).astype(np.uint8)


def write_png(path, image, inputs=()):
    """One image as an 8-bit grayscale PNG, written atomically (mnist_half.files)."""
    with atomic_output(path, inputs=inputs) as f:
        Image.fromarray(to_uint8(image)).save(f, format="PNG")


def write_output(path, images, input_format, inputs=()):
    """Store `images` (N, 28, 28) float32 at `path` in the form `input_format` describes; each
    file is written atomically and never over one of `inputs`."""
    if input_format.kind == "npy":
        array = to_uint8(images) if input_format.uint8 else images
        save_npy(path, array[0] if input_format.single else array, inputs=inputs)
    elif input_format.kind == "png":
        write_png(path, images[0], inputs)
    else:
        make_folder(path)
        sources = [input_path / name for input_path in inputs for name in input_format.names]
        for name, image in zip(input_format.names, images):
            write_png(path / name, image, sources)
