"""Building .npz archives member by member, as a damaged or hostile file would be built
(shared by test_files.py and test_faults.py)."""

import io
import zipfile

import numpy as np


def read_members(path):
    """{member name: raw bytes} of an .npz, in order."""
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path, members):
    """An .npz at `path` holding `members` ({name: raw bytes}) as they are."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def npy_bytes(array):
    """The bytes of `array` as a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
