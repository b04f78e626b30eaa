"""mnist_half.files: arrays checked before they are allocated, outputs written atomically,
never over an input, folders checked before the work, one training per run folder."""

import errno
import gzip
import io
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from npz_bytes import npy_bytes, write_members

from mnist_half import files
from mnist_half.checkpoint import CheckpointError, check_params, describe, load_checkpoint, save_checkpoint
from mnist_half.data import IMAGE_MAGIC, DataError, read_idx
from mnist_half.files import FileError


def npy_with_header(shape, dtype="<f4", payload=b"", version=(1, 0)):
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    writer = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
    writer(buffer, header)
    return buffer.getvalue() + payload


# --- reading ----------------------------------------------------------------------------------

def test_load_npy_gives_the_array_of_a_valid_file(tmp_path):
    x = np.arange(12, dtype=">i2").reshape(3, 4)
    np.save(tmp_path / "a.npy", np.asfortranarray(x))
    np.testing.assert_array_equal(files.load_npy(tmp_path / "a.npy"), x)


@pytest.mark.parametrize("content, words", [
    (npy_with_header((10**12,), "|u1", b"\0" * 4096), "more than"),
    (npy_with_header((1000, 28, 28), "|u1", b"\0" * 4096), "truncated"),
    (npy_with_header((2,), "|u1", b"\0" * 3), "oversized"),
    (npy_with_header((2,), "|O", b"\0" * 16), "pickle"),
    (b"\x93NUMPY\x07\x00" + b"\0" * 32, "version 7.0"),
    (b"PK\x03\x04rest", "archive"),
    (b"", "empty"),
    (b"not an array at all", "not a .npy"),
])
def test_load_npy_refuses_a_bad_header_before_allocating(tmp_path, content, words):
    path = tmp_path / "bad.npy"
    path.write_bytes(content)
    with pytest.raises(FileError, match=words) as error:
        files.load_npy(path)
    assert str(path) in str(error.value)


def test_load_npz_reads_every_member_and_checks_each_header(tmp_path):
    np.savez(tmp_path / "ok.npz", a=np.ones(3), b=np.zeros((2, 2), np.float32))
    arrays = files.load_npz(tmp_path / "ok.npz")
    assert sorted(arrays) == ["a", "b"] and arrays["b"].shape == (2, 2)
    write_members(tmp_path / "huge.npz", {"a.npy": npy_with_header((10**12,), payload=b"\0" * 64)})
    with pytest.raises(FileError, match="member a.npy: header claims"):
        files.load_npz(tmp_path / "huge.npz")
    write_members(tmp_path / "pickle.npz", {"a.npy": npy_bytes(np.array([{}], dtype=object))})
    with pytest.raises(FileError, match="pickle"):
        files.load_npz(tmp_path / "pickle.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    os.replace(tmp_path / "single.npy", tmp_path / "single.npz")
    with pytest.raises(FileError, match="single .npy array"):
        files.load_npz(tmp_path / "single.npz")


def test_load_npz_checks_the_crc_of_every_member(tmp_path):
    np.savez(tmp_path / "ok.npz", a=np.arange(1000.0))
    data = bytearray((tmp_path / "ok.npz").read_bytes())
    data[2000] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(data))
    with pytest.raises(FileError, match="CRC"):
        files.load_npz(tmp_path / "flipped.npz")


def test_a_gzip_idx_file_is_read_no_further_than_its_header_claims(tmp_path):
    """A 1-image header followed by 256 MiB of zeros (repeated gzip members, a few hundred
    KB on disk): refused as oversized after reading one byte more than the header claims."""
    header = gzip.compress(struct.pack(">4I", IMAGE_MAGIC, 1, 28, 28) + b"\0" * 784)
    bomb = header + gzip.compress(b"\0" * (16 << 20), compresslevel=1) * 16
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bomb)
    reads = []
    real_read = gzip.GzipFile.read

    def counting_read(self, size=-1):
        data = real_read(self, size)
        reads.append(len(data))
        return data

    gzip.GzipFile.read = counting_read
    try:
        with pytest.raises(DataError, match="oversized"):
            read_idx(path, IMAGE_MAGIC)
    finally:
        gzip.GzipFile.read = real_read
    assert sum(reads) == 16 + 784 + 1


# --- checkpoints ------------------------------------------------------------------------------

def save_run(path, meta=None, params=None):
    params = {"W": np.ones((2, 3), np.float32)} if params is None else params
    meta = {"iteration": 3, "config": {"model": "cnn-lstm", "hidden": 16, "layers": 2}} if meta is None else meta
    save_checkpoint(path, params, {"t": np.array(3)}, meta)
    return path


@pytest.mark.parametrize("meta, words", [
    ({"format": 99, "iteration": 1, "config": {"model": "cnn-lstm"}}, "format 99 .* reads format 1"),
    ({"config": {"model": "cnn-lstm"}}, "no iteration"),
    ({"iteration": 1}, "no config"),
    ({"iteration": 1, "config": {"model": "cnn-lstm", "members": 0}}, "members 0"),
    ({"iteration": 1, "config": {"model": "cnn-lstm", "hidden": -4}}, "hidden -4"),
    ({"iteration": 1, "config": {"model": 5}}, "no model"),
])
def test_a_checkpoints_metadata_is_checked(tmp_path, meta, words):
    path = save_run(tmp_path / "c.npz", meta)
    with pytest.raises(CheckpointError, match=words):
        load_checkpoint(path)


def test_non_finite_weights_are_refused(tmp_path):
    path = save_run(tmp_path / "c.npz", params={"W": np.array([1.0, np.nan], np.float32)})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(path)


def test_check_params_names_the_model_and_the_first_difference(tmp_path):
    config = {"model": "cnn-lstm", "hidden": 128, "layers": 5, "members": 1}
    with pytest.raises(CheckpointError, match=r"a cnn-lstm with hidden 128, 5 layers, 1 member: W has shape \(2,\)"):
        check_params(tmp_path, {"W": np.zeros(2)}, {"W": (3,)}, describe(config))
    with pytest.raises(CheckpointError, match="lacks 1 of them"):
        check_params(tmp_path, {}, {"W": (3,)}, "x")
    with pytest.raises(CheckpointError, match="W holds int64, expected floating-point"):
        check_params(tmp_path, {"W": np.zeros(3, np.int64)}, {"W": (3,)}, "x")
    check_params(tmp_path, {"W": np.zeros(3)}, {"W": np.zeros(3)}, "x")


# --- writing ----------------------------------------------------------------------------------

def test_atomic_output_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "out.json"
    files.write_text(path, "old")
    with pytest.raises(RuntimeError):
        with files.atomic_output(path, "w") as f:
            f.write("half")
            raise RuntimeError("stopped mid-write")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]
    files.write_text(path, "new")
    assert path.read_text() == "new"


def test_a_failed_write_is_a_file_error_and_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "out.npy"

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(FileError, match=r"cannot write .*out.npy \(No space left on device\)"):
        files.save_npy(path, np.zeros(10))
    assert os.listdir(tmp_path) == []


def test_an_output_that_is_the_input_by_any_name_is_refused(tmp_path):
    source = tmp_path / "in.npy"
    np.save(source, np.ones(3))
    os.link(source, tmp_path / "hard.npy")
    os.symlink(source, tmp_path / "soft.npy")
    for name in ("in.npy", "hard.npy", "soft.npy"):
        with pytest.raises(FileError, match="is the input"):
            files.save_npy(tmp_path / name, np.zeros(3), inputs=[source])
    np.testing.assert_array_equal(np.load(source), np.ones(3))
    files.save_npy(tmp_path / "other.npy", np.zeros(3), inputs=[source])


def test_check_writable_folder_finds_a_file_in_the_way_or_a_read_only_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FileError, match="is a file"):
        files.check_writable_folder(blocker)
    with pytest.raises(FileError, match=f"{blocker} is a file"):
        files.check_writable_folder(blocker / "a" / "b")
    files.check_writable_folder(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()  # nothing is created

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(FileError, match="Read-only file system"):
        files.check_writable_folder(tmp_path / "new")


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path):
    for name in (".checkpoint.npz.abc123.tmp", ".log.csv.x1.tmp", "checkpoint.npzq1w2e3.tmp", "keep.tmp",
                 "checkpoint.npz"):
        (tmp_path / name).write_text("x")
    removed = files.remove_stale_temporaries(tmp_path, "checkpoint.npz")
    assert sorted(p.name for p in removed) == [".checkpoint.npz.abc123.tmp", ".log.csv.x1.tmp",
                                               "checkpoint.npzq1w2e3.tmp"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "keep.tmp"]


def test_a_run_folder_is_locked_against_a_second_process(tmp_path):
    with files.RunLock(tmp_path / "run"):
        other = subprocess.run([sys.executable, "-c", "from mnist_half.files import RunLock; import sys\n"
                                f"RunLock({str(tmp_path / 'run')!r}).acquire()"], capture_output=True, text=True)
        assert other.returncode != 0
        assert f"in use by another training (process {os.getpid()})" in other.stderr
    files.RunLock(tmp_path / "run").acquire().release()  # free again once released


def test_a_folder_the_lock_created_is_removed_if_nothing_else_was_written(tmp_path):
    with files.RunLock(tmp_path / "empty"):
        assert (tmp_path / "empty" / ".lock").exists()
    assert not (tmp_path / "empty").exists()
    with files.RunLock(tmp_path / "used"):
        (tmp_path / "used" / "log.csv").write_text("x")
    assert sorted(os.listdir(tmp_path / "used")) == [".lock", "log.csv"]
