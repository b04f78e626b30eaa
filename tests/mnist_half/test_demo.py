"""python -m mnist_half.demo: the page's server answers with the model's own completion and
tinynet's own gradients, serves nothing but its files, turns every bad request into a JSON
400, and the command's start-up faults into one `error:` line; the page works in a real
browser (chromium through selenium, skipped with its reason where they are missing)."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mnist_half.checkpoint import save_checkpoint
from mnist_half.cli import EXIT_INTERRUPTED, EXIT_USAGE
from mnist_half.config import DEFAULTS, PRESETS, PRETRAINED
from mnist_half.demo_server import EQUATIONS_DOC, MAX_BODY_BYTES, PAGE_DIR, DemoApp, heading_anchor, make_server
from mnist_half.inspection import (
    EQUATIONS,
    corrupt_digit,
    decoder_step,
    load_for_inspection,
    thought_vector,
)
from mnist_half.models import build_model, complete_images, networks
from mnist_half.runs import load_trained
from tinynet.dispatch import reference_only
from tinynet.functional.activations import sigmoid

REPO = Path(__file__).resolve().parents[2]
ROW = 20


def save_model_checkpoint(path, name, **overrides):
    """A freshly initialised small model saved as a training run would save it."""
    config = {**DEFAULTS, **PRESETS["quick"], "model": name, "hidden": 8, "layers": 2, "members": 1, **overrides}
    models = [build_model(name, np.random.default_rng(seed), config, mean_intensity=0.13)
              for seed in range(config["members"])]
    params = models[0].named_params() if len(models) == 1 else {
        f"member{k}/{key}": value for k, model in enumerate(models) for key, value in model.named_params().items()}
    save_checkpoint(path, params, {}, {"format": 1, "iteration": 7, "config": config, "elapsed_s": 0.0,
                                       "data_source": "test"})
    return path


class Server:
    """A demo server on 127.0.0.1, a free port, in a thread; get/post send real HTTP requests."""

    def __init__(self, checkpoint):
        model, meta = load_for_inspection(checkpoint)
        self.app = DemoApp(model, meta, checkpoint)
        self.httpd = make_server(self.app, "127.0.0.1", 0)
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body bytes) of one request, the path sent exactly as given."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def get(self, path):
        status, headers, body = self.request("GET", path)
        return status, json.loads(body)

    def post(self, path, value):
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        status, _, answer = self.request("POST", path, body, {"Content-Type": "application/json"})
        return status, json.loads(answer)


@pytest.fixture(scope="module")
def server():
    running = Server(PRETRAINED)
    yield running
    running.close()


@pytest.fixture(scope="module")
def digit(server):
    """A corrupted held-out digit (as the page makes it) and its original: (input, original)."""
    status, answer = server.get("/api/digit?index=3")
    assert status == 200
    original = np.array(answer["image"], dtype=np.float32)
    status, answer = server.post("/api/corrupt", {"image": answer["image"], "noise": "sp", "seed": 5})
    assert status == 200
    return np.array(answer["input"], dtype=np.float32), original


@pytest.fixture(scope="module")
def model():
    """The shipped model loaded on its own, as `complete` loads it but with the image's gradient."""
    return load_trained(PRETRAINED, np, input_grad=True)[0]


# --- the page's files --------------------------------------------------------------------

@pytest.mark.parametrize("path, name, kind", [("/", "index.html", "text/html"),
                                              ("/index.html", "index.html", "text/html"),
                                              ("/demo.css", "demo.css", "text/css"),
                                              ("/demo.js", "demo.js", "text/javascript")])
def test_the_page_and_its_files_are_served(server, path, name, kind):
    status, headers, body = server.request("GET", path)
    assert status == 200
    assert headers["Content-Type"].startswith(kind)
    assert body == (PAGE_DIR / name).read_bytes()


def test_the_page_loads_only_its_own_files():
    """No CDN, no build step: every script and style sheet the page names is one of its files."""
    page = (PAGE_DIR / "index.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert set(re.findall(r'(?:src|href)="([^"#:]+)"', page)) <= {"demo.css", "demo.js"}
    assert "http" not in (PAGE_DIR / "demo.js").read_text().replace("HTTP ", "")


@pytest.mark.parametrize("path", ["/../mnist_half/config.py", "/demo_page/index.html", "/%2e%2e/%2e%2e/etc/passwd",
                                  "/..%2f..%2fpyproject.toml", "//etc/passwd", "/demo.py", "/inspection.py",
                                  "/docs/../README.md", "/api/nothing", "/index.html/..", "/favicon.ico"])
def test_nothing_but_the_pages_files_is_served(server, path):
    status, headers, body = server.request("GET", path)
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert "not found" in json.loads(body)["error"]


def test_equation_links_land_on_real_sections(server):
    """Each equation's link is the anchor GitHub gives its heading in docs/equations.md, and the
    served copy of that page carries the same anchors."""
    headings = re.findall(r"^#{1,6}\s+(.*)$", EQUATIONS_DOC.read_text(encoding="utf-8"), re.M)
    anchors = {heading_anchor(heading) for heading in headings}
    assert {anchor for _, anchor in EQUATIONS.values()} <= anchors
    assert heading_anchor("Eq. (13): the hidden state") == "eq-13-the-hidden-state"  # as docs/training.md links it
    status, info = server.get("/api/info")
    assert status == 200
    status, _, page = server.request("GET", "/docs/equations.md")
    assert status == 200
    for name, equation in info["equations"].items():
        path, anchor = equation["href"].split("#")
        assert path == "docs/equations.md"
        assert f'id="{anchor}"'.encode() in page, name


# --- bad requests ------------------------------------------------------------------------

GOOD_IMAGE = np.zeros((28, 28)).tolist()


def image_with(value):
    image = np.zeros((28, 28)).tolist()
    image[3][4] = value
    return image


@pytest.mark.parametrize("body, words", [
    (b'{"image": [[0, 0', "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"image": [[0]], "row": NaN}', "NaN"),
    ({"row": 3}, "missing"),
    ({"image": GOOD_IMAGE}, "missing"),
    ({"image": GOOD_IMAGE[:27], "row": 3}, "shape"),
    ({"image": [row[:27] for row in GOOD_IMAGE], "row": 3}, "shape"),
    ({"image": "a digit", "row": 3}, "image"),
    ({"image": image_with(1.5), "row": 3}, "[0, 1]"),
    ({"image": image_with(-0.1), "row": 3}, "[0, 1]"),
    ({"image": image_with("x"), "row": 3}, "image"),
    ({"image": image_with(float("inf")), "row": 3}, "Infinity"),
    (json.dumps({"image": image_with(0.5), "row": 3}).replace("0.5", "1e400").encode(), "NaN or infinite"),
    ({"image": GOOD_IMAGE, "row": 28}, "row"),
    ({"image": GOOD_IMAGE, "row": -1}, "row"),
    ({"image": GOOD_IMAGE, "row": "3"}, "row"),
    ({"image": GOOD_IMAGE, "row": True}, "row"),
    ({"image": GOOD_IMAGE, "row": 3.5}, "row"),
    ({"image": GOOD_IMAGE, "row": 3, "target": GOOD_IMAGE[:3]}, "target"),
])
def test_a_bad_inspect_request_is_a_400_with_a_json_error(server, body, words):
    status, answer = server.post("/api/inspect", body)
    assert status == 400
    assert set(answer) == {"error"} and words in answer["error"], answer


@pytest.mark.parametrize("body, words", [
    ({"image": GOOD_IMAGE, "noise": "salt", "seed": 1}, "noise"),
    ({"image": GOOD_IMAGE, "noise": "sp", "seed": -1}, "seed"),
    ({"image": GOOD_IMAGE, "noise": "sp", "seed": 2**40}, "seed"),
    ({"image": GOOD_IMAGE, "noise": "sp"}, "missing"),
    ({"image": image_with(float("nan")), "noise": "sp", "seed": 1}, "NaN"),  # json.dumps writes NaN
])
def test_a_bad_corrupt_request_is_a_400_with_a_json_error(server, body, words):
    status, answer = server.post("/api/corrupt", body)
    assert status == 400
    assert words in answer["error"], answer


@pytest.mark.parametrize("query, words", [("", "index"), ("?index=x", "integer"), ("?index=-1", "index"),
                                          ("?index=100000000", "index")])
def test_a_bad_digit_request_is_a_400_with_a_json_error(server, query, words):
    status, answer = server.get(f"/api/digit{query}")
    assert status == 400
    assert words in answer["error"], answer


def test_an_oversized_or_unsized_body_is_refused_unread(server):
    status, _, body = server.request("POST", "/api/inspect", b" " * (MAX_BODY_BYTES + 1))
    assert status == 413 and "allowed" in json.loads(body)["error"]
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    connection.putrequest("POST", "/api/inspect")
    connection.endheaders()  # no Content-Length
    response = connection.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    connection.close()


def test_a_request_for_another_host_name_is_refused(server):
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 reads nothing."""
    status, _, body = server.request("GET", "/api/info", headers={"Host": f"evil.example:{server.port}"})
    assert status == 403 and "evil.example" in json.loads(body)["error"]
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}"):
        assert server.request("GET", "/api/info", headers={"Host": host})[0] == 200


def test_an_unknown_method_is_a_json_error_and_the_server_goes_on(server):
    status, headers, body = server.request("DELETE", "/")
    assert status == 501 and headers["Content-Type"] == "application/json" and json.loads(body)["error"]
    assert server.request("GET", "/")[0] == 200


# --- the answers -------------------------------------------------------------------------

def test_the_corruption_is_figure_5s_at_the_runs_level(server, digit):
    noisy, original = digit
    np.testing.assert_allclose(noisy, corrupt_digit(original, "sp", 5, server.app.config), atol=1e-6)
    assert (noisy[14:] == 0).mean() > 0.85 and (noisy[14:] == 1).mean() > 0.05  # blanked, then 20 % noise
    status, answer = server.post("/api/corrupt", {"image": original.tolist(), "noise": "none", "seed": 0})
    clean = np.array(answer["input"])
    assert (clean[14:] == 0).all()
    np.testing.assert_allclose(clean[:14], original[:14], atol=1e-6)


def test_the_completion_is_completes(server, digit):
    """The page's completion is what `python -m mnist_half.complete` writes for the same input."""
    noisy, _ = digit
    status, answer = server.post("/api/inspect", {"image": noisy.tolist(), "row": ROW})
    assert status == 200
    shipped, _ = load_trained(PRETRAINED, np)
    expected = complete_images(shipped, noisy[None], np)[0]
    np.testing.assert_allclose(np.array(answer["completion"]), expected, atol=2e-5)
    assert np.array(answer["completion"])[14:].max() > 0.3  # the lower half is drawn


@pytest.mark.parametrize("objective", ["row_sum", "row_rmse"])
def test_the_gradients_are_the_models_backward(server, digit, model, objective):
    """The image's and v's gradients of row ROW's scalar are one call of the model's backward
    with that scalar's gradient on row ROW alone: 1 for the sum, (y - target) / (28 rmse) for
    the RMSE (eq. 15). Of an ensemble (the shipped model is one), the mean of its members:
    each member's backward gets 1/M of it, the image's gradient is their sum, and v's is the
    first member's, whose internals the page shows."""
    noisy, original = digit
    request = {"image": noisy.tolist(), "row": ROW}
    if objective == "row_rmse":
        request["target"] = original.tolist()
    status, answer = server.post("/api/inspect", request)
    assert status == 200 and answer["objective"] == objective and answer["row"] == ROW
    members = networks(model)
    y = sum(member.forward(noisy[None]) for member in members) / len(members)
    np.testing.assert_allclose(y, model.forward(noisy[None]), rtol=1e-6)
    dy = np.zeros_like(y)
    if objective == "row_sum":
        dy[0, ROW] = 1
        value = y[0, ROW].sum()
    else:
        diff = y[0, ROW] - original[ROW]
        value = np.sqrt(np.mean(diff**2))
        dy[0, ROW] = diff / (28 * value)
    each = []  # (dx, dv) of each member, from its share of the gradient
    for member in members:
        member.forward(noisy[None])
        each.append(member.backward_with_thought(dy / len(members)))
        np.testing.assert_allclose(member.backward(dy / len(members))[0], each[-1][0][0])  # its first half
    dx, dv = sum(dx_member for dx_member, _ in each), each[0][1]
    assert answer["objective_value"] == pytest.approx(float(value), rel=1e-5)
    for got, want in ((answer["grad_image"], dx[0]), (answer["grad_v"], dv[0])):
        got = np.array(got)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


def test_the_internals_are_the_decoders_own_states(server, digit, model):
    """The v and per-layer i, f, g, o, c, h shown for step ROW are those of the decoder's
    forward: c_t is what step t+1 reads as c_{t-1}, h_t what the layer above (or eq. 14's
    output layer) reads, v the encoder's output; of an ensemble, its first member's."""
    noisy, _ = digit
    status, answer = server.post("/api/inspect", {"image": noisy.tolist(), "row": ROW})
    assert status == 200
    model = networks(model)[0]
    with reference_only():
        y = model.forward(noisy[None])
        steps = [decoder_step(model.decoder, t) for t in (ROW, ROW + 1)]
        v = thought_vector(model.decoder)
        caches = model.decoder.cache[0]
    np.testing.assert_allclose(np.array(answer["v"]), model.encoder.forward(noisy[None, None])[0], atol=1e-5)
    np.testing.assert_allclose(np.array(answer["v"]), v[0], atol=1e-5)
    assert len(answer["layers"]) == len(steps[0]) == 5
    for l, (shown, here) in enumerate(zip(answer["layers"], steps[0])):
        for name in ("i", "f", "g", "o", "c", "h"):
            np.testing.assert_allclose(np.array(shown[name]), here[name][0], rtol=1e-5, atol=1e-6)
        for name in ("i", "f", "o"):
            assert 0 <= min(shown[name]) and max(shown[name]) <= 1
        _, _, (_, c_prev_next, _, _) = caches[ROW + 1][0][l]
        np.testing.assert_allclose(here["c"], c_prev_next, rtol=1e-6, atol=1e-7)  # eq. (12)
        if l + 1 < len(steps[0]):
            h_above_read = caches[ROW][0][l + 1][0][0]
        else:
            h_above_read = caches[ROW][1][0]  # the output layer's input (eq. 14)
        np.testing.assert_allclose(here["h"], h_above_read, rtol=1e-6, atol=1e-7)  # eq. (13)
    W, b = model.decoder.params["out/W"], model.decoder.params["out/b"]
    np.testing.assert_allclose(sigmoid(steps[0][-1]["h"] @ W + b)[0], y[0, ROW], atol=1e-6)  # eq. (14)


def test_held_out_digits_come_from_the_runs_test_split(server):
    status, info = server.get("/api/info")
    assert status == 200 and info["held_out"]["count"] > 0 and "test" in info["held_out"]["source"]
    status, answer = server.get("/api/digit?index=0")
    image = np.array(answer["image"])
    assert image.shape == (28, 28) and 0 <= image.min() and image.max() <= 1 and 0 <= answer["label"] <= 9
    assert info["noise"]["sp"]["amount"] == 0.2 and info["noise"]["gauss"]["amount"] == 0.3


def test_one_request_takes_well_under_a_second(server, digit):
    """The forward and backward of the shipped model (two members) on one digit, on the CPU
    (about 120 ms on one thread of a 2-core machine; the bound leaves room for a busy one)."""
    noisy, _ = digit
    started = time.perf_counter()
    status, answer = server.post("/api/inspect", {"image": noisy.tolist(), "row": 27})
    assert status == 200 and time.perf_counter() - started < 2.0 and answer["compute_ms"] < 2000


@pytest.mark.parametrize("name, members", [("cnn-cnn", 1), ("cnn-lstm", 2)])
def test_a_cnn_cnn_run_or_an_ensemble_is_shown_for_what_applies(tmp_path, name, members):
    """A CNN-CNN has no v and no gates (the page says so); its image gradient is its backward's.
    An ensemble's completion is the members' mean, its gradient the sum of theirs."""
    checkpoint = save_model_checkpoint(tmp_path / "checkpoint.npz", name, members=members)
    running = Server(checkpoint)
    try:
        x = np.random.default_rng(0).uniform(0, 1, (28, 28)).astype(np.float32)
        x[14:] = 0
        status, answer = running.post("/api/inspect", {"image": x.tolist(), "row": 16})
        status_info, info = running.get("/api/info")
    finally:
        running.close()
    assert status == status_info == 200 and info["model"] == name and info["members"] == members
    loaded = load_trained(checkpoint, np, input_grad=True)[0]
    np.testing.assert_allclose(np.array(answer["completion"]), complete_images(loaded, x[None], np)[0], atol=2e-5)
    dx = 0
    for network in networks(loaded):
        y = network.forward(x[None])
        dy = np.zeros_like(y)
        dy[0, 16] = 1 / members
        dx = dx + network.backward(dy)[0]
    np.testing.assert_allclose(np.array(answer["grad_image"]), dx, rtol=1e-3, atol=1e-4 * np.abs(dx).max())
    if name == "cnn-cnn":
        assert answer["v"] is None and answer["grad_v"] is None and answer["layers"] is None
    else:
        assert answer["members"] == 2 and len(answer["layers"]) == 2 and len(answer["v"]) == 100


# --- the command -------------------------------------------------------------------------

def demo_command(*args):
    return [sys.executable, "-m", "mnist_half.demo", *map(str, args)]


def command_env():
    return {**os.environ, "MNIST_HALF_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def assert_one_error_line(result, *words):
    assert result.returncode == EXIT_USAGE, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_a_missing_checkpoint_is_one_error_line_and_exit_2(tmp_path):
    result = subprocess.run(demo_command("--checkpoint", tmp_path / "nothing.npz"), env=command_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert_one_error_line(result, "no such checkpoint")


def test_a_foreign_checkpoint_is_one_error_line_and_exit_2(tmp_path):
    foreign = tmp_path / "weights.npz"
    np.savez(foreign, W=np.zeros(3))
    result = subprocess.run(demo_command("--checkpoint", foreign), env=command_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert_one_error_line(result, "not an mnist-half checkpoint")


def test_a_port_in_use_is_one_error_line_and_exit_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(demo_command("--port", port), env=command_env(), cwd=REPO,
                                capture_output=True, text=True, timeout=120)
    assert_one_error_line(result, f"port {port}", "in use")


def test_a_port_out_of_range_is_one_error_line_and_exit_2():
    result = subprocess.run(demo_command("--port", 70000), env=command_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert_one_error_line(result, "--port")


def test_the_command_prints_its_address_serves_and_stops_on_ctrl_c():
    process = subprocess.Popen(demo_command(), env=command_env(), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in process.stdout:
            found = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
            if found:
                url = found.group(1)
                break
        assert url, process.stderr.read()
        with urllib.request.urlopen(url + "api/info", timeout=30) as response:
            assert json.load(response)["model"] == "cnn-lstm"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "../pyproject.toml", timeout=30)
        assert refused.value.code == 404
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "interrupted" in err


# --- the page in a browser ---------------------------------------------------------------

CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage")
# Where the screenshot goes: docs/img/demo.png (the README's) with MNIST_HALF_SCREENSHOT=1,
# else the test's own folder, so that a test run leaves the tracked picture alone.
SCREENSHOT = REPO / "docs" / "img" / "demo.png"


def browser_missing():
    """Why the browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[browser]')"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if not Path(CHROMEDRIVER).is_file():
        return f"{CHROMEDRIVER} is missing (apt-get install chromium-driver)"
    return None


@pytest.fixture
def browser(tmp_path):
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}")
    options.add_argument("--window-size=1280,1100")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_redraws_a_drawn_digit_in_a_browser(server, browser, tmp_path):
    """Strokes drawn on the canvas with the pointer: the page shows the server's completion
    of what it sent, lower half drawn, row by row up to the slider's row."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def settled(row):
        """Waits until the page has played its steps and shows its inspection of `row`."""
        WebDriverWait(browser, 60).until(lambda driver: driver.execute_script(
            "const s = window.demoState; return s.requests > 0 && !document.body.dataset.busy && !s.playing"
            f" && s.inspection && s.inspection.row === {row} && s.row === {row};"))

    browser.get(server.url + "/")
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script("return window.demoState.info !== null"))
    canvas = browser.find_element(By.ID, "draw")
    cell = canvas.size["width"] / 28  # the canvas's centre is the origin of the offsets
    # the top of a 9: a loop in the upper half
    points = [(14 + 5 * np.cos(a), 8 + 4.5 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 24)]
    actions = ActionChains(browser).move_to_element_with_offset(
        canvas, round((points[0][0] - 14) * cell), round((points[0][1] - 14) * cell)).click_and_hold()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        actions.move_by_offset(round((x1 - x0) * cell), round((y1 - y0) * cell))
    actions.move_by_offset(0, round(5 * cell)).release().perform()
    settled(27)

    state = browser.execute_script("return {input: window.demoState.input, completion: window.demoState.completion,"
                                   " drawing: Array.from(window.demoState.drawing)};")
    drawn, sent, shown = (np.array(state[key], dtype=np.float64).reshape(28, 28)
                          for key in ("drawing", "input", "completion"))
    assert drawn[:14].max() == 1 and (drawn[14:] == 0).all()  # ink in the upper half only
    assert (sent[14:] != 0).any() and sent[:14].max() == 1  # the page's default: salt and pepper, as in training
    status, answer = server.post("/api/inspect", {"image": sent.tolist(), "row": 27})
    assert status == 200
    np.testing.assert_array_equal(shown, np.array(answer["completion"]))  # the server's answer, as it gave it
    assert shown[14:].max() > 0.3  # the lower half got redrawn
    pixels = np.array(browser.execute_script(
        "const c = document.getElementById('output');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data);")).reshape(28, 28, 4)[..., 0]
    np.testing.assert_allclose(pixels, np.round(255 * shown), atol=1)  # every row on screen, as computed

    slider = browser.find_element(By.ID, "row")
    for _ in range(27 - ROW):
        slider.send_keys(Keys.ARROW_LEFT)
    settled(ROW)
    pixels = np.array(browser.execute_script(
        "const c = document.getElementById('output');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data);")).reshape(28, 28, 4)[..., 0]
    assert (pixels[ROW + 1:] == 0).all()  # the decoder has drawn rows 0..ROW by step ROW
    np.testing.assert_allclose(pixels[:ROW + 1], np.round(255 * shown[:ROW + 1]), atol=1)
    assert browser.find_element(By.CSS_SELECTOR, "#inside h2").text == f"4. Inside step {ROW}"
    assert "error" not in browser.find_element(By.ID, "status").get_attribute("class")

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 20)
    out = SCREENSHOT if os.environ.get("MNIST_HALF_SCREENSHOT") == "1" else tmp_path / "demo.png"
    assert browser.save_screenshot(str(out))
    assert out.stat().st_size > 10_000
