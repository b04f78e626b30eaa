"""python -m mnist_half.complete: a user's digits in, completed digits out in the same form,
used exactly as given; every bad input is one clear line and exit status 2."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mnist_half.corruption
from mnist_half.checkpoint import save_checkpoint
from mnist_half.cli import EXIT_USAGE
from mnist_half.config import DEFAULTS, PRESETS
from mnist_half.image_files import read_png, to_uint8
from mnist_half.models import build_model, complete_images
from mnist_half.runs import load_trained
from tinynet.backend import gpu_unavailable_reason

N = 5


def save_model_checkpoint(path, name="cnn-cnn", **overrides):
    """A freshly initialised model saved as a training run would save it."""
    config = {**DEFAULTS, **PRESETS["quick"], "model": name, "hidden": 8, "layers": 2, "members": 1, **overrides}
    model = build_model(name, np.random.default_rng(0), config, mean_intensity=0.13)
    meta = {"format": 1, "iteration": 7, "config": config, "elapsed_s": 0.0, "data_source": "test"}
    save_checkpoint(path, model.named_params(), {}, meta)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_model_checkpoint(tmp_path_factory.mktemp("run") / "checkpoint.npz")


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_trained(checkpoint, np)[0]


@pytest.fixture
def images(rng):
    """Corrupted-looking inputs: lower half black, salt-and-pepper values on top."""
    x = rng.uniform(0, 1, (N, 28, 28)).astype(np.float32)
    x[:, 14:] = 0
    x[:, 20, ::3] = 1
    return x


@pytest.fixture
def no_corruption(monkeypatch):
    """Any attempt to corrupt the caller's images again fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the caller's images were corrupted a second time")
    for name in ("corrupt", "corrupt_test_set", "blank_lower_half", "add_salt_and_pepper", "add_gaussian_noise"):
        monkeypatch.setattr(mnist_half.corruption, name, refuse)


@pytest.fixture
def complete(run_cli):
    """complete(checkpoint, source, target, *flags): python -m mnist_half.complete on the CPU."""
    def run(checkpoint, source, target, *extra):
        run_cli("complete", ["--checkpoint", checkpoint, "--input", source, "--output", target, "--device", "cpu",
                             *extra])

    return run


class RecordingModel:
    """Returns 1 - x and remembers every batch it was given."""

    def __init__(self):
        self.batches = []

    def forward(self, x, train=False):
        assert not train
        self.batches.append(x.copy())
        return 1 - x


def test_complete_images_feeds_the_images_unchanged_in_batches(images):
    model = RecordingModel()
    y = complete_images(model, images, np, batch_size=2)
    assert [len(b) for b in model.batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(model.batches), images)
    assert y.dtype == np.float32 and y.shape == images.shape
    np.testing.assert_array_equal(y, 1 - images)


@pytest.mark.parametrize("name", ["cnn-lstm", "cnn-cnn"])
def test_dropout_samples_average_passes_with_dropout_on_and_repeat(tmp_path, images, name):
    """--samples K: the mean of K passes with dropout on, from fixed masks (so it repeats);
    different from the deterministic pass."""
    model = load_trained(save_model_checkpoint(tmp_path / "checkpoint.npz", name), np)[0]
    y = complete_images(model, images, np, batch_size=2, samples=3)
    np.testing.assert_array_equal(y, complete_images(model, images, np, batch_size=2, samples=3))
    model.seed_dropout(0)
    expected = [sum(model.forward(images[start:start + 2], train=True) for _ in range(3)) / 3
                for start in range(0, N, 2)]
    np.testing.assert_allclose(y, np.concatenate(expected), rtol=1e-6)
    assert np.abs(y - complete_images(model, images, np)).max() > 1e-4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_npy_float_round_trip(complete, tmp_path, checkpoint, model, images, no_corruption, capsys, dtype):
    source, target = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(source, images.astype(dtype))
    complete(checkpoint, source, target, "--batch-size", "2")
    y = np.load(target)
    assert y.shape == images.shape and y.dtype == np.float32
    assert 0 <= y.min() and y.max() <= 1
    np.testing.assert_allclose(y, complete_images(model, images, np), atol=1e-6)  # the model saw the input as is
    assert capsys.readouterr().out.count("\n") == 1  # a one-line summary


def test_npy_uint8_round_trip(complete, tmp_path, checkpoint, model, images, no_corruption):
    pixels = to_uint8(images)
    source, target = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(source, pixels)
    complete(checkpoint, source, target)
    y = np.load(target)
    assert y.shape == pixels.shape and y.dtype == np.uint8
    expected = to_uint8(complete_images(model, pixels.astype(np.float32) / 255, np))
    assert np.abs(y.astype(int) - expected).max() <= 1  # rounding at a .5 boundary may differ


def test_single_image_keeps_its_shape(complete, tmp_path, checkpoint, model, images):
    source, target = tmp_path / "one.npy", tmp_path / "one_out.npy"
    np.save(source, images[0])
    complete(checkpoint, source, target)
    y = np.load(target)
    assert y.shape == (28, 28) and y.dtype == np.float32
    np.testing.assert_allclose(y, complete_images(model, images[:1], np)[0], atol=1e-6)


def test_png_file_round_trip(complete, tmp_path, checkpoint, model, images, no_corruption):
    source, target = tmp_path / "digit.png", tmp_path / "out" / "digit.png"
    Image.fromarray(to_uint8(images[0])).save(source)
    complete(checkpoint, source, target)
    with Image.open(target) as image:
        assert image.size == (28, 28) and image.mode == "L"
        y = np.asarray(image)
    expected = to_uint8(complete_images(model, to_uint8(images[:1]) / np.float32(255), np)[0])
    assert np.abs(y.astype(int) - expected).max() <= 1


def test_png_folder_round_trip_keeps_the_names(complete, tmp_path, checkpoint, model, images):
    source, target = tmp_path / "digits", tmp_path / "completed"
    source.mkdir()
    gray = to_uint8(images)
    Image.fromarray(gray[0]).save(source / "a.png")
    Image.fromarray(np.repeat(gray[1][..., None], 3, axis=2)).save(source / "b.png")  # RGB
    Image.fromarray(gray[2].astype(np.uint16) * 257).save(source / "c.png")  # 16-bit grayscale
    (source / "notes.txt").write_text("not an image")
    complete(checkpoint, source, target)
    assert sorted(p.name for p in target.iterdir()) == ["a.png", "b.png", "c.png"]
    expected = to_uint8(complete_images(model, gray[:3] / np.float32(255), np))
    for name, want in zip(["a.png", "b.png", "c.png"], expected):
        with Image.open(target / name) as image:
            assert np.abs(np.asarray(image).astype(int) - want).max() <= 1, name


def test_png_colour_is_luminance_and_alpha_composites_over_black(tmp_path, rng):
    rgb = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    luma = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.float32) / 255
    np.testing.assert_allclose(read_png(tmp_path / "rgb.png"), luma, atol=1 / 255)
    rgba = np.dstack([rgb, np.full((28, 28), 255, np.uint8)])
    rgba[:14, :, 3] = 0  # transparent upper half
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    x = read_png(tmp_path / "rgba.png")
    assert not x[:14].any()
    np.testing.assert_allclose(x[14:], luma[14:], atol=1 / 255)


def test_command_line_exit_status(tmp_path, checkpoint, images):
    source = tmp_path / "in.npy"
    np.save(source, images)
    command = [sys.executable, "-m", "mnist_half.complete", "--checkpoint", str(checkpoint),
               "--input", str(source), "--device", "cpu"]
    done = subprocess.run(command + ["--output", str(tmp_path / "out.npy")], capture_output=True, text=True)
    assert done.returncode == 0 and "wrote 5 completed images" in done.stdout
    done = subprocess.run(command + ["--output", str(tmp_path / "out.png")], capture_output=True, text=True)
    assert done.returncode == EXIT_USAGE and done.stderr.startswith("error:") and ".npy" in done.stderr


# --- bad input: one line naming the problem, exit status 2, nothing written ------------------

def npy(array):
    return lambda path: np.save(path, array)


def raw(data):
    return lambda path: path.write_bytes(data)


def png(array):
    return lambda path: Image.fromarray(array).save(path)


def npz(path):
    with open(path, "wb") as f:
        np.savez(f, a=np.zeros((28, 28)))


def pickled(path):
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)


def empty_folder(path):
    path.mkdir()


GOOD = np.zeros((2, 28, 28), np.float32)
NAN, INF = GOOD.copy(), GOOD.copy()
NAN[0, 3, 3], INF[1, 2, 2] = np.nan, np.inf

# id: (input name, how to make it, output name, words the message must hold)
BAD_INPUTS = {
    "missing": ("in.npy", None, "out.npy", "does not exist"),
    "unknown-suffix": ("in.jpg", raw(b"jpeg?"), "out.jpg", "expected a .npy array"),
    "4d": ("in.npy", npy(np.zeros((2, 1, 28, 28), np.float32)), "out.npy", "shape (2, 1, 28, 28)"),
    "wrong-size": ("in.npy", npy(np.zeros((2, 28, 27), np.float32)), "out.npy", "shape (2, 28, 27)"),
    "1d": ("in.npy", npy(np.zeros(784, np.float32)), "out.npy", "shape (784,)"),
    "no-images": ("in.npy", npy(np.zeros((0, 28, 28), np.float32)), "out.npy", "no images"),
    "nan": ("in.npy", npy(NAN), "out.npy", "NaN"),
    "inf": ("in.npy", npy(INF), "out.npy", "infinite"),
    "above-one": ("in.npy", npy(GOOD + 1.5), "out.npy", "expected [0, 1]"),
    "negative": ("in.npy", npy(GOOD - 0.1), "out.npy", "expected [0, 1]"),
    "int64": ("in.npy", npy(np.zeros((2, 28, 28), np.int64)), "out.npy", "dtype int64"),
    "bool": ("in.npy", npy(np.zeros((2, 28, 28), bool)), "out.npy", "dtype bool"),
    "corrupt-npy": ("in.npy", raw(b"\x93NUMPY garbage"), "out.npy", "not a readable .npy"),
    "pickled-npy": ("in.npy", pickled, "out.npy", "not a readable .npy"),
    "npz-archive": ("in.npy", npz, "out.npy", "archive"),
    "png-size": ("in.png", png(np.zeros((32, 30), np.uint8)), "out.png", "30x32 pixels"),
    "corrupt-png": ("in.png", raw(b"\x89PNG\r\n\x1a\n truncated"), "out.png", "not a readable PNG"),
    "empty-folder": ("digits", empty_folder, "out", "no .png images"),
    "npy-to-png": ("in.npy", npy(GOOD), "out.png", "must end in .npy"),
    "png-to-npy": ("in.png", png(np.zeros((28, 28), np.uint8)), "out.npy", "must end in .png"),
    "overwrite-input": ("in.npy", npy(GOOD), "in.npy", "is the input itself"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_exits_2_naming_the_problem(complete, tmp_path, checkpoint, capsys, case):
    source_name, make, target_name, words = BAD_INPUTS[case]
    source, target = tmp_path / source_name, tmp_path / target_name
    if make is not None:
        make(source)
    before = set(tmp_path.iterdir())
    with pytest.raises(SystemExit) as exit_:
        complete(checkpoint, source, target)
    assert exit_.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and words in err, err
    assert set(tmp_path.iterdir()) == before  # nothing written


def test_folder_input_needs_a_folder_output(complete, tmp_path, checkpoint, capsys):
    (tmp_path / "digits").mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "digits" / "a.png")
    (tmp_path / "taken").write_text("a file")
    for target in ("out.npy", "taken"):
        with pytest.raises(SystemExit) as exit_:
            complete(checkpoint, tmp_path / "digits", tmp_path / target)
        assert exit_.value.code == EXIT_USAGE and "must be a folder" in capsys.readouterr().err


def test_file_output_that_is_a_folder_is_an_error(complete, tmp_path, checkpoint, capsys):
    np.save(tmp_path / "in.npy", GOOD)
    (tmp_path / "out.npy").mkdir()
    with pytest.raises(SystemExit):
        complete(checkpoint, tmp_path / "in.npy", tmp_path / "out.npy")
    assert "is a folder" in capsys.readouterr().err


def mismatched_checkpoint(path):
    """A valid checkpoint file whose parameters belong to no model its config names."""
    save_checkpoint(path, {"W": np.zeros(3)}, {}, {"iteration": 0, "config": {**DEFAULTS, "model": "cnn-cnn"}})


BAD_CHECKPOINTS = {
    "missing": (None, "no such checkpoint"),
    "corrupt": (raw(b"PK\x03\x04 not a zip"), "not a readable mnist-half checkpoint"),
    "mismatched": (mismatched_checkpoint, "its weights are not those of"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS), ids=list(BAD_CHECKPOINTS))
def test_bad_checkpoint_exits_2(complete, tmp_path, capsys, case):
    make, words = BAD_CHECKPOINTS[case]
    path = tmp_path / "checkpoint.npz"
    if make is not None:
        make(path)
    np.save(tmp_path / "in.npy", GOOD)
    with pytest.raises(SystemExit) as exit_:
        complete(path, tmp_path / "in.npy", tmp_path / "out.npy")
    assert exit_.value.code == EXIT_USAGE
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out.npy").exists()


def test_bad_batch_size_and_device_exit_2(complete, tmp_path, checkpoint, capsys):
    np.save(tmp_path / "in.npy", GOOD)
    with pytest.raises(SystemExit) as exit_:
        complete(checkpoint, tmp_path / "in.npy", tmp_path / "out.npy", "--batch-size", "0")
    assert exit_.value.code == EXIT_USAGE and "--batch-size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        complete(checkpoint, tmp_path / "in.npy", tmp_path / "out.npy", "--samples", "0")
    assert exit_.value.code == EXIT_USAGE and "--samples must be at least 1" in capsys.readouterr().err
    if gpu_unavailable_reason() is not None:
        with pytest.raises(SystemExit) as exit_:
            complete(checkpoint, tmp_path / "in.npy", tmp_path / "out.npy", "--device", "gpu")
        assert exit_.value.code == EXIT_USAGE and "--device gpu" in capsys.readouterr().err
