"""Fault injection: the cases of the reliability review (shared/reviews/reliability-review.md)
that the commands once mishandled, each run as a user runs it.

Every bad file, flag or fault must end in exactly one `error:` line on stderr, the
documented exit status (2: bad input; 3: training diverged; 130: Ctrl-C), no traceback,
the inputs unchanged and the last good checkpoint intact.

Most cases run the command in this process (`python -m` semantics through runpy, so an
escaping exception fails the test with its traceback); the ones about processes (kill -9,
Ctrl-C, two trainings at once, file size limits) run it as a subprocess. Every model is
tiny (hidden 16, 2 layers, 1 member) and all share one trained run (`tiny_run`). A stand-in
digit classifier in the session's cache spares `evaluate` from training one.

The kill -9 loop runs KILL_TRIALS trials (2); MNIST_HALF_KILL_TRIALS=N runs N (the
review ran 33).
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from npz_bytes import npy_bytes, read_members, write_members

import mnist_half
from mnist_half.checkpoint import META_KEY, load_checkpoint
from mnist_half.data import IMAGE_MAGIC, LABEL_MAGIC

REPO = Path(mnist_half.__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--layers", "2", "--members", "1", "--no-progress", "--device", "cpu"]
RUN_ITERS = 6  # the shared run: 6 iterations, a checkpoint every 2
KILL_TRIALS = int(os.environ.get("MNIST_HALF_KILL_TRIALS", "2"))
EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 3, 130
# runpy warns that the command's module was imported before it runs as __main__ (by an earlier test)
pytestmark = pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")


# --- running a command ------------------------------------------------------------------------

class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    @property
    def error_lines(self):
        return [line for line in self.err.splitlines() if line.startswith("error:")]

    def __repr__(self):
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture
def run_here(run_cli, capsys):
    """run_here(module, *args): `python -m mnist_half.<module> args` in this process (the
    run_cli fixture) as a Result; an exception other than SystemExit escapes (and fails the
    test with its traceback)."""
    def run(module, *args):
        code = 0
        try:
            run_cli(module, args)
        except SystemExit as stop:
            code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def command(module, *args):
    return [sys.executable, "-m", f"mnist_half.{module}", *map(str, args)]


def run_process(env, module, *args, timeout=120, preexec_fn=None):
    done = subprocess.run(command(module, *args), env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)
    return Result(done.returncode, done.stdout, done.stderr)


def assert_refused(result, code=EXIT_USAGE, *words):
    """Exit `code`, exactly one `error:` line (holding every one of `words`), no traceback."""
    assert result.code == code, result
    assert "Traceback" not in result.err, result
    assert len(result.error_lines) == 1, result
    for word in words:
        assert word in result.error_lines[0], result


def digest(path):
    return Path(path).read_bytes()


# --- the shared session: environment, a trained tiny run --------------------------------------

@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def fault_env(session_dir):
    """The environment of every command: offline, its own cache, one Numba thread."""
    env = {**os.environ, "MNIST_HALF_OFFLINE": "1", "MNIST_HALF_CACHE": str(session_dir / "cache"),
           "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    env.pop("MNIST_HALF_DATA", None)
    return env


@pytest.fixture
def env_here(fault_env, monkeypatch):
    """fault_env's MNIST_HALF_* variables in this process, for run_here."""
    for name in ("MNIST_HALF_OFFLINE", "MNIST_HALF_CACHE"):
        monkeypatch.setenv(name, fault_env[name])
    monkeypatch.delenv("MNIST_HALF_DATA", raising=False)
    return fault_env


@pytest.fixture(scope="session")
def stand_in_classifier(fault_env):
    """An untrained digit classifier saved in the cache under the embedded split's tag, so
    that `evaluate` (and train's final report) finds one instead of training it."""
    from mnist_half.config import DEFAULTS
    from mnist_half.reader import build_classifier, cache_path, classifier_meta, classifier_tag, save_classifier
    from mnist_half.runs import load_split

    saved = {name: os.environ.get(name) for name in ("MNIST_HALF_OFFLINE", "MNIST_HALF_CACHE", "MNIST_HALF_DATA")}
    os.environ.update(MNIST_HALF_OFFLINE="1", MNIST_HALF_CACHE=fault_env["MNIST_HALF_CACHE"])
    os.environ.pop("MNIST_HALF_DATA", None)
    try:
        train_set, _ = load_split(DEFAULTS, progress=False)
        tag = classifier_tag(train_set)
        save_classifier(cache_path(tag), build_classifier(np.random.default_rng(0)),
                        classifier_meta(tag, train_set, DEFAULTS, seed=0, elapsed_s=0.0))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def train_args(out, iters=RUN_ITERS, *extra):
    return ["--iters", iters, "--checkpoint-every", 2, *TINY, "--out", out, *extra]


@pytest.fixture(scope="session")
def tiny_run(session_dir, fault_env, stand_in_classifier):
    """A finished run of RUN_ITERS iterations (its folder); never modified by a test."""
    out = session_dir / "tiny"
    result = run_process(fault_env, "train", *train_args(out))
    assert result.code == 0, result
    return out


@pytest.fixture
def checkpoint(tiny_run):
    return tiny_run / "checkpoint.npz"


@pytest.fixture
def inputs(tmp_path):
    """Three corrupted-looking digits as a .npy."""
    path = tmp_path / "in.npy"
    x = np.random.default_rng(0).uniform(0, 1, (3, 28, 28)).astype(np.float32)
    x[:, 14:] = 0
    np.save(path, x)
    return path


# --- checkpoints ------------------------------------------------------------------------------

def huge_header(dtype, shape, payload=100):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue() + b"\0" * payload


def with_meta(**changes):
    def edit(members):
        meta = json.loads(np.load(io.BytesIO(members[META_KEY + ".npy"])).tobytes())
        for key, value in changes.items():
            if key.startswith("config."):
                meta["config"][key[len("config."):]] = value
            elif value is None:
                meta.pop(key)
            else:
                meta[key] = value
        members[META_KEY + ".npy"] = npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return edit


def raw_meta(data):
    def edit(members):
        members[META_KEY + ".npy"] = npy_bytes(np.frombuffer(data, np.uint8))
    return edit


def drop(prefix):
    def edit(members):
        for name in [n for n in members if n.startswith(prefix)]:
            del members[name]
    return edit


def replace(name, array):
    def edit(members):
        members[name] = npy_bytes(array)
    return edit


def poison(value):
    def edit(members):
        name = "model/encoder/fc/W.npy"
        array = np.load(io.BytesIO(members[name]))
        array.flat[7] = value
        members[name] = npy_bytes(array)
    return edit


def pickled(members):
    members["model/encoder/fc/W.npy"] = npy_bytes(np.array([{"x": 1}], dtype=object))


def huge_member(members):
    members["model/encoder/fc/W.npy"] = huge_header("<f4", (10**12,))


# The review's checkpoint variants (section 2): an edit of the run's members, or of the file's bytes.
CHECKPOINT_EDITS = {
    "future_format": with_meta(format=99),
    "huge_member": huge_member,
    "inf_weights": poison(np.inf),
    "nan_weights": poison(np.nan),
    "meta_badjson": raw_meta(b"{iteration: 3"),
    "meta_badutf8": raw_meta(b"\xff\xfe{}"),
    "meta_cnncnn": with_meta(**{"config.model": "cnn-cnn"}),
    "meta_hidden32": with_meta(**{"config.hidden": 32}),
    "meta_hidden_neg": with_meta(**{"config.hidden": -4}),
    "meta_layers3": with_meta(**{"config.layers": 3}),
    "meta_list": raw_meta(b"[1, 2]"),
    "meta_members0": with_meta(**{"config.members": 0}),
    "meta_no_config": with_meta(config=None),
    "meta_no_iteration": with_meta(iteration=None),
    "meta_unknown_model": with_meta(**{"config.model": "cnn-transformer"}),
    "missing_avg_key": drop("average/encoder/fc/W"),
    "missing_model_key": drop("model/encoder/fc/W"),
    "no_meta": drop(META_KEY),
    "pickle_member": pickled,
    "wrong_shape": replace("model/encoder/fc/W.npy", np.zeros((5, 5), np.float32)),
}
BYTE_EDITS = {
    "bitflip": lambda data: data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:],
    "garbage": lambda data: np.random.default_rng(0).bytes(4096),
    "trunc_half": lambda data: data[:len(data) // 2],
    "trunc_tail": lambda data: data[:-100],
    "zero": lambda data: b"",
    "npy_not_npz": lambda data: npy_bytes(np.zeros((3, 28, 28), np.float32)),
}
CHECKPOINT_CASES = sorted([*CHECKPOINT_EDITS, *BYTE_EDITS])


def damaged_checkpoint(source, case, target):
    """The checkpoint `source` with the review's damage `case`, written to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if case in BYTE_EDITS:
        target.write_bytes(BYTE_EDITS[case](source.read_bytes()))
    else:
        members = read_members(source)
        CHECKPOINT_EDITS[case](members)
        write_members(target, members)
    return target


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_a_damaged_checkpoint_is_refused_by_complete(case, checkpoint, inputs, tmp_path, env_here, run_here):
    """Review 2.1-2.79, the `complete` rows (M1, M2, M3, M7)."""
    bad = damaged_checkpoint(checkpoint, case, tmp_path / "ck" / "checkpoint.npz")
    before, input_before = digest(bad), digest(inputs)
    result = run_here("complete", "--checkpoint", bad, "--input", inputs, "--output", tmp_path / "out.npy",
                      "--device", "cpu")
    assert_refused(result, EXIT_USAGE, str(bad))
    assert not (tmp_path / "out.npy").exists()
    assert digest(bad) == before and digest(inputs) == input_before


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_a_damaged_checkpoint_is_refused_by_evaluate(case, checkpoint, tmp_path, env_here, run_here):
    """Review 2.2-2.80, the `evaluate` rows."""
    bad = damaged_checkpoint(checkpoint, case, tmp_path / "ck" / "checkpoint.npz")
    before = digest(bad)
    result = run_here("evaluate", "--checkpoint", bad, "--limit", 20, "--no-progress", "--device", "cpu")
    assert_refused(result, EXIT_USAGE, str(bad))
    assert digest(bad) == before and not list(bad.parent.glob("metrics*.json"))


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_a_damaged_checkpoint_is_refused_by_resume(case, checkpoint, tmp_path, env_here, run_here):
    """Review 2.3-2.81, the `train --resume` rows."""
    bad = damaged_checkpoint(checkpoint, case, tmp_path / "run" / "checkpoint.npz")
    before = digest(bad)
    result = run_here("train", *train_args(tmp_path / "run", RUN_ITERS + 2, "--resume"))
    assert_refused(result, EXIT_USAGE, str(bad))
    assert digest(bad) == before


def test_another_models_checkpoint_names_both_sizes(checkpoint, tmp_path, env_here, run_here):
    """Review 2.82 (M7)."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "checkpoint.npz")
    result = run_here("train", *train_args(run, RUN_ITERS + 2, "--resume", "--hidden", 32))
    assert_refused(result, EXIT_USAGE, "hidden 16", "hidden 32")
    assert digest(run / "checkpoint.npz") == digest(checkpoint)


@pytest.mark.parametrize("flags", [["--model", "cnn-cnn"], ["--lr", "1e-2"], ["--seed", "7"], ["--layers", "3"]])
def test_resume_refuses_a_flag_that_contradicts_the_checkpoint(flags, checkpoint, tmp_path, env_here, run_here):
    """Review 2.83, 2.84 (M7)."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "checkpoint.npz")
    result = run_here("train", *train_args(run, RUN_ITERS + 2, "--resume", *flags))
    assert_refused(result, EXIT_USAGE, flags[0])
    assert digest(run / "checkpoint.npz") == digest(checkpoint)


def test_resume_refuses_a_checkpoint_without_optimizer_state(checkpoint, tmp_path, env_here, run_here, fault_env):
    """Review 2.57 (M7)."""
    members = read_members(checkpoint)
    drop("optim/")(members)
    (tmp_path / "run").mkdir()
    write_members(tmp_path / "run" / "checkpoint.npz", members)
    result = run_here("train", *train_args(tmp_path / "run", RUN_ITERS + 2, "--resume"))
    assert_refused(result, EXIT_USAGE, "optimizer", "--reset-optimizer")
    result = run_process(fault_env, "train", *train_args(tmp_path / "run", RUN_ITERS + 2, "--resume",
                                                         "--reset-optimizer"))
    assert result.code == 0, result
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")[2]["iteration"] == RUN_ITERS + 2


# --- inputs and outputs of complete -----------------------------------------------------------

HUGE_NPY = {
    "huge_1e12_u8": huge_header("|u1", (1275510203, 28, 28)),
    "huge_1e12_f4": huge_header("<f4", (1275510203, 28, 28)),
    "huge_1e12_flat": huge_header("|u1", (10**12,)),
    "huge_1e10_u8": huge_header("|u1", (12755102, 28, 28), payload=4096),
}


@pytest.mark.parametrize("case", HUGE_NPY)
def test_an_npy_header_claiming_too_much_is_refused_before_allocating(case, checkpoint, tmp_path, env_here, run_here):
    """Review 1.28-1.31 (M2)."""
    source = tmp_path / f"{case}.npy"
    source.write_bytes(HUGE_NPY[case])
    result = run_here("complete", "--checkpoint", checkpoint, "--input", source,
                      "--output", tmp_path / "out.npy", "--device", "cpu")
    assert_refused(result, EXIT_USAGE, str(source), "header claims")


def test_output_that_is_a_hard_link_to_the_input_is_refused(checkpoint, inputs, tmp_path, env_here, run_here):
    """Review 1.60 (M5)."""
    link = tmp_path / "links" / "hard.npy"
    link.parent.mkdir()
    os.link(inputs, link)
    before = digest(inputs)
    result = run_here("complete", "--checkpoint", checkpoint, "--input", inputs, "--output", link,
                      "--device", "cpu")
    assert_refused(result, EXIT_USAGE, "input")
    assert digest(inputs) == before


@pytest.mark.parametrize("suffix", [".npy", ".png", ""])
def test_output_below_a_file_is_refused_before_the_work(suffix, checkpoint, inputs, tmp_path, env_here, run_here):
    """Review 1.66 (M4), for each kind of output."""
    source = inputs
    if suffix == ".png":
        from PIL import Image
        source = tmp_path / "in.png"
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(source)
    elif suffix == "":
        source = tmp_path / "pngs"
        source.mkdir()
        from PIL import Image
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(source / "0.png")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_here("complete", "--checkpoint", checkpoint, "--input", source,
                      "--output", blocker / "sub" / f"out{suffix}", "--device", "cpu")
    assert_refused(result, EXIT_USAGE, str(blocker))
    assert blocker.read_text() == "x"


def limit_file_size(limit):
    """A preexec_fn: files the child writes may not exceed `limit` bytes (writes beyond fail
    with EFBIG, as on a full disk; Python ignores SIGXFSZ)."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_leaves_no_partial_output(checkpoint, tmp_path, fault_env):
    """Review 1.76 (M4), the full disk as a file size limit."""
    source = tmp_path / "big.npy"
    np.save(source, np.zeros((500, 28, 28), np.float32))
    out = tmp_path / "out" / "big.npy"
    result = run_process(fault_env, "complete", "--checkpoint", checkpoint, "--input", source, "--output", out,
                         "--device", "cpu", preexec_fn=limit_file_size(200_000))
    assert_refused(result, EXIT_USAGE, str(out))
    assert not out.exists() and not list(out.parent.glob("*.tmp"))


# --- data -------------------------------------------------------------------------------------

def write_idx_folder(folder, n, gz_images=None):
    """An MNIST folder of `n` random digits (the training pair only); gz_images: the bytes
    to store as train-images-idx3-ubyte.gz instead."""
    import struct

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    if gz_images is None:
        (folder / "train-images-idx3-ubyte").write_bytes(struct.pack(">4I", IMAGE_MAGIC, n, 28, 28) + images.tobytes())
    else:
        (folder / "train-images-idx3-ubyte.gz").write_bytes(gz_images)
    (folder / "train-labels-idx1-ubyte").write_bytes(struct.pack(">2I", LABEL_MAGIC, n) + labels.tobytes())
    return folder


def gzip_bomb(claimed_images, expanded_bytes):
    """A gzip stream of an IDX header for `claimed_images` digits followed by
    `expanded_bytes` zeros, built from repeated gzip members (so it is made in milliseconds)."""
    import gzip
    import struct

    block = gzip.compress(b"\0" * (16 << 20), compresslevel=1)
    header = gzip.compress(struct.pack(">4I", IMAGE_MAGIC, claimed_images, 28, 28))
    return header + block * (expanded_bytes // (16 << 20))


@pytest.mark.parametrize("case", ["zero_images", "tiny_3_images", "tiny_3_images_no_blend", "gz_bomb"])
def test_data_too_small_or_a_bomb_is_one_line(case, tmp_path, env_here, run_here):
    """Review 3.12, 3.13, 3.30 (M6) and 3.25 (M2)."""
    if case == "gz_bomb":
        folder = write_idx_folder(tmp_path / case, 1, gz_images=gzip_bomb(1, 1 << 30))
    else:
        folder = write_idx_folder(tmp_path / case, 0 if case == "zero_images" else 3)
    extra = ["--target-blend", "0"] if case.endswith("no_blend") else []
    result = run_here("train", *train_args(tmp_path / "run", 1, "--data", folder, *extra))
    assert_refused(result, EXIT_USAGE)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


# --- flags ------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, words", [
    (["--lr", "nan"], "--lr"), (["--lr", "inf"], "--lr"), (["--lr", "-1"], "--lr"),
    (["--seed", "-1"], "--seed"),
    (["--batch-size", "5000"], "--batch-size"), (["--target-neighbours", "100000"], "--target-neighbours"),
    (["--target-blend", "nan"], "--target-blend"),
])
def test_a_bad_numeric_flag_is_one_line_before_any_work(flags, words, tmp_path, env_here, run_here):
    """Review 5.8, 5.11, 5.13, 5.14, 5.17, 5.20, 5.22 (M3, M6)."""
    result = run_here("train", *train_args(tmp_path / "run", 3, *flags))
    assert_refused(result, EXIT_USAGE, words)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


# --- output folders ---------------------------------------------------------------------------

def test_train_out_that_is_a_file_or_below_one_is_refused_at_once(tmp_path, env_here, run_here):
    """Review 4c.1, 4c.2 (M4)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out in (blocker, blocker / "run"):
        result = run_here("train", *train_args(out, 3))
        assert_refused(result, EXIT_USAGE, str(blocker))
        assert "data:" not in result.err  # refused before the data loaded
    assert blocker.read_text() == "x"


def test_figures_out_that_is_a_file_is_refused(tiny_run, tmp_path, env_here, run_here):
    """Review 5.48 (M4)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = run_here("figures", "--runs", tiny_run, "--out", blocker)
    assert_refused(result, EXIT_USAGE, str(blocker))
    assert blocker.read_text() == "x"


def test_an_unwritable_cache_is_found_before_training_the_classifier(checkpoint, tmp_path, env_here, run_here,
                                                                     monkeypatch):
    """Review 3.31 (M4)."""
    blocker = tmp_path / "cache-file"
    blocker.write_text("x")
    monkeypatch.setenv("MNIST_HALF_CACHE", str(blocker))
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "checkpoint.npz")
    import mnist_half.reader

    def refuse(*args, **kwargs):
        raise AssertionError("the classifier was trained although it could not be saved")

    monkeypatch.setattr(mnist_half.reader, "train_classifier", refuse)
    result = run_here("evaluate", "--checkpoint", run / "checkpoint.npz", "--limit", 20, "--no-progress",
                      "--device", "cpu")
    assert_refused(result, EXIT_USAGE, str(blocker))


# --- processes: lock, divergence, Ctrl-C, kill -9 ---------------------------------------------

def wait_for(predicate, timeout=60.0, process=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def test_a_second_training_into_the_same_folder_is_refused_naming_the_first(tmp_path, fault_env,
                                                                              stand_in_classifier):
    """Review 4c.4 (M8)."""
    out = tmp_path / "run"
    first = subprocess.Popen(command("train", *train_args(out, 400)), env=fault_env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = out / ".lock"
    try:
        assert wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), process=first)
        second = run_process(fault_env, "train", *train_args(out, 400, "--seed", 1))
        assert_refused(second, EXIT_USAGE, str(first.pid))
    finally:
        first.kill()
        first.wait()


def test_divergence_stops_with_exit_3_and_keeps_the_last_good_checkpoint(checkpoint, tmp_path, fault_env):
    """Review 4c.6 (M3)."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "checkpoint.npz")
    members = read_members(run / "checkpoint.npz")
    with_meta(**{"config.lr": 1e38})(members)  # the run resumes at a learning rate that overflows
    write_members(run / "checkpoint.npz", members)
    before = digest(run / "checkpoint.npz")
    result = run_process(fault_env, "train", *train_args(run, RUN_ITERS + 4, "--resume"))
    assert_refused(result, EXIT_DIVERGED, "iteration", "--lr")
    assert digest(run / "checkpoint.npz") == before


def test_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path, fault_env):
    """Review 4b.11 (M9): Ctrl-C while the data loads, before the first iteration."""
    out = tmp_path / "run"
    process = subprocess.Popen(command("train", *train_args(out, 100)), env=fault_env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: (out / ".lock").exists(), process=process)  # past the imports: loading the data
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    result = Result(process.returncode, out, err)
    assert result.code == EXIT_INTERRUPTED, result
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) <= 2, result


def test_ctrl_c_during_a_save_and_again_during_the_interrupt_save_still_saves(tmp_path, env_here, run_here,
                                                                            monkeypatch):
    """Review 4b.10 (M9). The first Ctrl-C lands inside the periodic save at iteration 2, the second inside the
    interrupt save that follows: both saves complete, the run stops with exit 130."""
    real_savez = np.savez
    saves = []

    def savez_hit_by_ctrl_c(*args, **kwargs):
        saves.append(1)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here, in the middle of the save
        real_savez(*args, **kwargs)

    monkeypatch.setattr(np, "savez", savez_hit_by_ctrl_c)
    result = run_here("train", *train_args(tmp_path / "run", 40, "--target-blend", 0))
    assert result.code == EXIT_INTERRUPTED, result
    assert "Traceback" not in result.err, result
    assert len(saves) == 2
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")[2]["iteration"] == 2


def test_ctrl_c_during_the_final_evaluation_is_one_line_and_exit_130(tmp_path, env_here, run_here, monkeypatch):
    """Review 4b.8: the checkpoint is complete, the line says how to get the metrics."""
    import mnist_half.evaluation

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist_half.evaluation, "evaluate_checkpoint", interrupted)
    result = run_here("train", *train_args(tmp_path / "run", 2, "--target-blend", 0))
    assert result.code == EXIT_INTERRUPTED and "Traceback" not in result.err, result
    assert "mnist_half.evaluate" in result.err
    assert load_checkpoint(tmp_path / "run" / "checkpoint.npz")[2]["iteration"] == 2


def test_a_full_disk_during_training_is_one_line_and_keeps_no_partial_checkpoint(tmp_path, fault_env):
    """Review 4c.7-8 (with a file size limit for the full disk): exit 2, no temporary left."""
    out = tmp_path / "run"
    result = run_process(fault_env, "train", *train_args(out, 4, "--target-blend", 0),
                         preexec_fn=limit_file_size(1_000_000))
    assert_refused(result, EXIT_USAGE, "checkpoint.npz")
    assert not (out / "checkpoint.npz").exists() and not list(out.glob(".*.tmp"))


def test_a_log_row_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    """A kill -9 in the middle of an append leaves a partial last row of log.csv."""
    from mnist_half.runs import RunLog

    log = tmp_path / "log.csv"
    log.write_text("iteration,train_loss,test_loss,elapsed_s\n50,0.28441,,5.4\n50,,0.30001,5.5\n100,0.2")
    RunLog(log, 100)
    assert log.read_text().splitlines()[1:] == ["50,0.28441,,5.4", "50,,0.30001,5.5"]


def log_rows(run):
    """log.csv's rows without the elapsed time."""
    return [line.rsplit(",", 1)[0] for line in (run / "log.csv").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(KILL_TRIALS))
def test_kill_9_leaves_a_loadable_checkpoint_and_resume_matches_the_uninterrupted_run(trial, tiny_run, tmp_path,
                                                                                       fault_env):
    """Review 4a.1-4a.33, with 4a.34 (log.csv) and 4a.35 (stale temporaries)."""
    out = tmp_path / "run"
    process = subprocess.Popen(command("train", *train_args(out)), env=fault_env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    delay = np.random.default_rng(trial).uniform(0.0, 1.0)
    wait_for(lambda: (out / "checkpoint.npz").exists(), process=process)
    time.sleep(delay)
    process.kill()
    process.wait()
    if (out / "checkpoint.npz").exists():
        load_checkpoint(out / "checkpoint.npz")  # never half-written
        resumed = run_process(fault_env, "train", *train_args(out, RUN_ITERS, "--resume"))
    else:
        resumed = run_process(fault_env, "train", *train_args(out))
    assert resumed.code == 0, resumed
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    assert log_rows(out) == log_rows(tiny_run)
    final, reference = load_checkpoint(out / "checkpoint.npz"), load_checkpoint(tiny_run / "checkpoint.npz")
    assert final[2]["iteration"] == reference[2]["iteration"] == RUN_ITERS
    for part, reference_part in zip(final[:2], reference[:2]):
        assert part.keys() == reference_part.keys()
        for name in part:
            np.testing.assert_array_equal(part[name], reference_part[name], err_msg=name)
