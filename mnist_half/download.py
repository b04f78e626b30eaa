"""Download the four MNIST .gz files from public mirrors, verified against their MD5 sums.

Each file goes to a temporary file in the cache folder and is renamed to its final name
only once its MD5 matches (flushed to disk, folder included), so the cache never holds a
partial or corrupt file. Mirrors are tried in order; when all fail for a file,
DownloadError says what each one answered.
"""

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .files import fsync_folder

# Base URLs, tried in order. Read at call time, so tests can patch them.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# The published MD5 sums of the four files, keyed by file name.
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

TIMEOUT_S = 5.0  # per connection attempt and per read: an offline machine gives up fast
CHUNK_BYTES = 1 << 16


class DownloadError(RuntimeError):
    """No mirror delivered a file with the right MD5; the message lists every mirror's answer."""


def download_mnist(cache_dir, mirrors=None, md5s=None, timeout=TIMEOUT_S, progress=True):
    """Fill `cache_dir` with the files of `md5s` (default MD5) from `mirrors` (default MIRRORS).

    Files already in the cache were verified when they arrived and are kept as they are.
    Returns the cache folder as a Path; raises DownloadError at the first file that no
    mirror can deliver.
    """
    mirrors = MIRRORS if mirrors is None else mirrors
    md5s = MD5 if md5s is None else md5s
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the cache folder {cache_dir} ({error})") from None
    for name, md5 in md5s.items():
        if (cache_dir / name).is_file():
            continue
        failures = []
        for base in mirrors:
            url = base + name
            try:
                _fetch_verified(url, cache_dir / name, md5, timeout, progress)
                break
            except (OSError, ValueError, http.client.HTTPException) as error:
                failures.append(f"{url}: {error}")
        else:
            raise DownloadError(f"{name}: " + ("; ".join(failures) or "no mirror given"))
    return cache_dir


def _fetch_verified(url, path, md5, timeout, progress):
    """Stream `url` into a temporary file beside `path`, rename it to `path` if its MD5 is `md5`."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      desc=path.name, disable=not progress, leave=False) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != md5:
            raise ValueError(f"MD5 mismatch: got {digest.hexdigest()}, expected {md5}")
        os.replace(tmp_name, path)
        fsync_folder(path.parent)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
