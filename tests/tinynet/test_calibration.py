"""tinynet.accel.cpu.calibration: the own float32 products serve only where they beat NumPy's
BLAS, timed once per machine and remembered; TINYNET_OWN_PRODUCTS overrides."""

import json

import pytest

calibration = pytest.importorskip("tinynet.accel.cpu.calibration", reason="the accelerators are absent")
numba_gemm = pytest.importorskip("tinynet.accel.cpu.numba_gemm", reason="the accelerators are absent")


@pytest.fixture
def verdicts(tmp_path, monkeypatch):
    """A fresh verdict folder, no override, and a record of the timings asked for."""
    monkeypatch.setenv("TINYNET_CACHE", str(tmp_path))
    monkeypatch.delenv("TINYNET_OWN_PRODUCTS", raising=False)
    calls = []

    def fake_time_both(own_matmul, own_correlate, zero_padded):
        calls.append(1)
        return fake_time_both.result

    fake_time_both.result = (1.0, 2.0)
    monkeypatch.setattr(calibration, "time_both", fake_time_both)
    return tmp_path, calls, fake_time_both


def serve(has_avx512=True):
    return calibration.own_products_serve(has_avx512, None, None, None)


@pytest.mark.parametrize("own_s, blas_s, serves", [(1.0, 2.0, True), (2.0, 1.0, False), (1.0, 1.0, True)])
def test_the_faster_path_serves_and_the_verdict_is_kept(verdicts, own_s, blas_s, serves):
    folder, calls, fake = verdicts
    fake.result = (own_s, blas_s)
    assert serve() is serves and len(calls) == 1
    stored = json.loads((folder / calibration.CACHE_FILE).read_text())[calibration.machine_key()]
    assert stored == {"own_s": own_s, "blas_s": blas_s, "own_serves": serves}
    fake.result = (blas_s, own_s)  # a second process reads the verdict, it does not time again
    assert serve() is serves and len(calls) == 1


def test_without_avx512_blas_serves_untimed(verdicts):
    _, calls, _ = verdicts
    assert serve(has_avx512=False) is False and calls == []


@pytest.mark.parametrize("value, serves", [("1", True), ("0", False)])
def test_the_environment_decides_untimed(verdicts, monkeypatch, value, serves):
    _, calls, _ = verdicts
    monkeypatch.setenv("TINYNET_OWN_PRODUCTS", value)
    assert serve(has_avx512=True) is serves and calls == []


def test_an_unwritable_or_corrupt_verdict_file_only_means_timing_again(verdicts, monkeypatch, tmp_path):
    folder, calls, _ = verdicts
    (folder / calibration.CACHE_FILE).write_text("{not json")
    assert serve() is True and len(calls) == 1
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TINYNET_CACHE", str(blocker / "below-a-file"))
    assert serve() is True and len(calls) == 2


@pytest.mark.skipif(not numba_gemm.HAS_AVX512, reason="the own products' timing needs a CPU with AVX-512")
def test_time_both_times_both_paths():
    own_s, blas_s = calibration.time_both(numba_gemm.matmul, numba_gemm.correlate, numba_gemm.zero_padded)
    assert 0 < own_s < 1 and 0 < blas_s < 1
