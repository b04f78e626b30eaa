"""The one checked way into every file the program reads and out to every file it writes.

Reading (`load_npy`, `load_npz`): an array's header (format version, dtype, shape) is read
and checked against the bytes the file really holds *before* anything is allocated, so a
header that claims a terabyte is one clear error, not an allocation; object arrays
(pickles) are refused, never unpickled.

Writing (`atomic_output`, `write_text`): every output goes to a temporary file beside its
final name, is flushed to disk, renamed over the name and the folder's entry is flushed
too, so a crash, a full disk or Ctrl-C leaves either the old file or the new one, never a
half-written one. `refuse_overwriting` compares an output with the inputs by identity
(`os.path.samefile`: symbolic and hard links included), `check_writable_folder` finds an
unusable output folder before any long work, `RunLock` keeps two trainings out of one run
folder, and `remove_stale_temporaries` clears what a killed process left.

Every failure is a FileError whose message names the file: the commands turn it into one
`error:` line and exit status 2 (mnist_half.cli).
"""

import contextlib
import fcntl
import io
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

# The most bytes one array of a checkpoint or an input may hold: the paper's model is about
# 6 MB a member and full MNIST 47 MB, so this is far above any real file.
MAX_ARRAY_BYTES = 1 << 30
MAX_ARCHIVE_BYTES = 4 << 30  # the most that all arrays of one .npz may hold together
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
TEMP_SUFFIX = ".tmp"
LOCK_NAME = ".lock"


class FileError(ValueError):
    """A file or folder that cannot be read or written as asked; the message names it."""


# --- reading --------------------------------------------------------------------------------

def _npy_header(f, where):
    """(shape, fortran_order, dtype) of the .npy stream `f` at its start; `where` names it."""
    try:
        version = np.lib.format.read_magic(f)
    except ValueError as error:
        raise FileError(f"{where}: not a .npy array ({error})") from None
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise FileError(f"{where}: .npy format version {version[0]}.{version[1]}, this program reads 1.0 and 2.0")
    try:
        shape, fortran_order, dtype = readers[version](f)
    except ValueError as error:
        raise FileError(f"{where}: unreadable .npy header ({error})") from None
    if dtype.hasobject:
        raise FileError(f"{where}: holds Python objects (a pickle), which are never loaded: expected numbers")
    return shape, fortran_order, dtype


def _check_size(shape, dtype, available, where, max_bytes):
    """The header's claim (shape x item size) against the bytes really there and the limit."""
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > max_bytes:
        raise FileError(f"{where}: header claims shape {shape} of {dtype} ({claimed:,} bytes), more than the "
                        f"{max_bytes:,} bytes an array may hold here")
    if claimed != available:
        what = "truncated" if available < claimed else "oversized"
        raise FileError(f"{where}: {what}: header claims shape {shape} of {dtype} ({claimed:,} bytes), "
                        f"the file holds {available:,}")


def _read_checked(f, where, available, max_bytes):
    """One array from `f`, positioned at a .npy header, whose data must be `available` bytes."""
    start = f.tell()
    shape, fortran_order, dtype = _npy_header(f, where)
    _check_size(shape, dtype, available - (f.tell() - start), where, max_bytes)
    f.seek(start)
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise FileError(f"{where}: unreadable .npy data ({error})") from None


def _open_for_reading(path):
    path = Path(path)
    try:
        return path.open("rb")
    except IsADirectoryError:
        raise FileError(f"{path} is a folder, expected a file") from None
    except OSError as error:
        raise FileError(f"cannot read {path} ({error.strerror or error})") from None


def load_npy(path, max_bytes=MAX_ARRAY_BYTES):
    """The one array of .npy file `path`, checked (module docstring) before it is allocated."""
    with _open_for_reading(path) as f:
        start = f.read(len(ZIP_MAGIC))
        if start == ZIP_MAGIC:
            raise FileError(f"{path}: holds an archive of several arrays (.npz), expected one .npy array")
        f.seek(0)
        try:
            if not start:
                raise FileError(f"{path}: the file is empty")
            return _read_checked(f, path, os.fstat(f.fileno()).st_size, max_bytes)
        except FileError as error:
            detail = str(error).removeprefix(f"{path}: ")
            raise FileError(f"{path}: not a readable .npy array ({detail})") from None


def load_npz(path, max_bytes=MAX_ARRAY_BYTES):
    """{name: array} of .npz archive `path` (names without '.npy'); each member's header is
    checked against the size the archive's directory gives it before it is read, and the
    whole member is read, so its CRC is checked too."""
    with _open_for_reading(path) as f:
        start = f.read(len(NPY_MAGIC))
        if start == NPY_MAGIC:
            raise FileError(f"{path}: is a single .npy array (renamed?), expected an .npz archive")
        if not start:
            raise FileError(f"{path}: is empty, expected an .npz archive")
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise FileError(f"{path}: not an .npz archive ({error})") from None
        arrays = {}
        with archive:
            claimed = sum(info.file_size for info in archive.infolist())
            if claimed > MAX_ARCHIVE_BYTES:
                raise FileError(f"{path}: its members claim {claimed:,} bytes, more than the {MAX_ARCHIVE_BYTES:,} "
                                f"an archive may hold here")
            for info in archive.infolist():
                name = info.filename[:-len(".npy")] if info.filename.endswith(".npy") else info.filename
                where = f"{path}: member {info.filename}"
                if not info.filename.endswith(".npy"):
                    raise FileError(f"{where}: not a .npy array")
                if info.file_size > max_bytes:
                    raise FileError(f"{where}: {info.file_size:,} bytes, more than the {max_bytes:,} an array may "
                                    f"hold here")
                try:
                    with archive.open(info) as member:
                        shape, _, dtype = _npy_header(member, where)
                        _check_size(shape, dtype, info.file_size - member.tell(), where, max_bytes)
                    data = archive.read(info)  # whole, so that zipfile checks its CRC
                except FileError:
                    raise
                except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
                    raise FileError(f"{where}: unreadable ({error})") from None
                arrays[name] = _read_checked(io.BytesIO(data), where, len(data), max_bytes)
        return arrays


# --- writing --------------------------------------------------------------------------------

def _reason(error):
    return error.strerror or str(error)


def refuse_overwriting(output, inputs):
    """A FileError when `output` is one of `inputs` (the same file by identity: a symbolic or
    hard link counts), so no command ever writes over what it reads."""
    output = Path(output)
    for source in inputs:
        try:
            same = output.exists() and os.path.samefile(output, source)
        except OSError:
            same = False
        if same:
            raise FileError(f"output {output} is the input {source} itself (the same file, maybe through a link): "
                            f"choose another output path")


def check_writable_folder(folder, what="output folder"):
    """A FileError unless files can be created in `folder`, or, where it does not exist yet,
    in the nearest folder above it that exists (nothing is created here)."""
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        if probe == folder:
            raise FileError(f"{what} {folder} is a file, not a folder")
        raise FileError(f"{what} {folder} cannot be created: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        where = "cannot be written" if probe == folder else f"cannot be created in {probe}"
        raise FileError(f"{what} {folder} {where} ({_reason(error)})") from None


def make_folder(folder, what="output folder"):
    """Create `folder` (and its parents) or raise a FileError saying why not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileError(f"{what} {folder} is a file, not a folder") from None
    except OSError as error:
        raise FileError(f"cannot create {what} {folder} ({_reason(error)})") from None
    return folder


def fsync_folder(folder):
    """Flush `folder`'s entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_name_prefix(path):
    """The prefix of the temporary files that atomic_output writes beside `path`."""
    return f".{Path(path).name}."


@contextlib.contextmanager
def atomic_output(path, mode="wb", inputs=()):
    """Yield a file object whose content becomes `path` only when the block ends without an
    error: a temporary file beside it, flushed, renamed over it, the folder flushed. On any
    failure the temporary file is removed and `path` is as it was; an OSError (a full disk,
    a read-only folder) becomes a FileError naming `path`. `inputs` are refused as `path`."""
    path = Path(path)
    refuse_overwriting(path, inputs)
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporary_name_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as error:
        raise FileError(f"cannot write {path} ({_reason(error)})") from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; an output is an ordinary file
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise FileError(f"cannot write {path} ({_reason(error)})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_text(path, text, inputs=()):
    """`text` written atomically to `path` (atomic_output)."""
    with atomic_output(path, "w", inputs) as f:
        f.write(text)


def save_npy(path, array, inputs=()):
    """`array` written atomically as .npy to `path` (atomic_output)."""
    with atomic_output(path, "wb", inputs) as f:
        np.save(f, array, allow_pickle=False)


def remove_stale_temporaries(folder, name):
    """Remove the temporary files that a killed writer left in `folder`: atomic_output's of
    any output (.*.tmp) and those of the older checkpoint writer of `name` (NAME*.tmp). Call
    it only while holding the folder's RunLock, so that no live writer's file is taken.
    Returns their paths."""
    folder = Path(folder)
    stale = [*folder.glob(f".*{TEMP_SUFFIX}"), *folder.glob(f"{name}*{TEMP_SUFFIX}")]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class RunLock:
    """An exclusive lock on a run folder (fcntl.flock on its .lock file, released when the
    process ends, however it ends); the file names the holder's process id, so a second
    process refused the lock can say which process holds it. A folder that the lock created
    and that holds nothing but the lock file when it is released (the command stopped
    before writing anything) is removed again."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd = None
        self.created = False

    def acquire(self):
        self.created = not self.folder.exists()
        make_folder(self.folder, "run folder")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise FileError(f"cannot lock the run folder {self.folder} ({_reason(error)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FileError(f"{self.folder} is in use by another training (process {holder}): wait for it to end, "
                            f"or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        if self.created and os.listdir(self.folder) == [LOCK_NAME]:
            self.path.unlink()
            self.folder.rmdir()
        os.close(self.fd)
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
