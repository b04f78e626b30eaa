"""The demo page's web server (python -m mnist_half.demo): the page's own files and a small
JSON API over mnist_half.inspection, on the standard library's http.server.

    GET  /, /demo.css, /demo.js        the page (mnist_half/demo_page/, nothing else on disk)
    GET  /docs/equations.md            that page of a source checkout, as text with its headings' anchors
    GET  /api/info                     the model, the noises, the held-out digits, the equations' anchors
    GET  /api/digit?index=K            held-out digit K: {"index", "label", "image"}
    POST /api/corrupt                  {"image", "noise", "seed"} -> {"input"}: Figure 5's corruption
    POST /api/inspect                  {"image", "row"[, "target"]} -> the completion, step `row`'s
                                       internals and the gradients (mnist_half.inspection.inspect_digit)

Images travel as 28 lists of 28 numbers in [0, 1]. A request the API cannot use is answered
with HTTP 400 (413 for a body over MAX_BODY_BYTES, 404 for any other path) and a JSON body
{"error": "..."}; nothing it receives can end the server or reach a traceback. One model
serves every request, one request at a time (its layers keep their caches between the
forward and the backward).
"""

import errno
import html
import json
import re
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .cli import UsageError
from .inspection import EQUATIONS, HeldOutDigits, corrupt_digit, describe_model, inspect_digit

PAGE_DIR = Path(__file__).resolve().parent / "demo_page"
# The only files served, by URL path: nothing else on disk is reachable.
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/demo.css": ("demo.css", "text/css; charset=utf-8"),
    "/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
}
EQUATIONS_DOC = Path(__file__).resolve().parents[1] / "docs" / "equations.md"  # present in a source checkout
LOOPBACK = ("127.0.0.1", "::1")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
MAX_BODY_BYTES = 256 * 1024  # two images as JSON take about 40 KB
DIGITS = 6  # significant digits of the numbers sent (float32 holds about 7)


def heading_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def equations_page(markdown):
    """docs/equations.md as a plain HTML page: the text as written, each heading an anchor
    (heading_anchor), so that the page's links to its sections land where GitHub's would."""
    parts = []
    for line in markdown.splitlines():
        match = re.match(r"(#{1,6})\s+(.*)", line)
        if match:
            level = len(match.group(1))
            parts.append(f'</pre><h{level} id="{heading_anchor(match.group(2))}">{html.escape(match.group(2))}'
                         f'</h{level}><pre>')
        else:
            parts.append(html.escape(line))
    body = "\n".join(parts)
    return (f'<!doctype html><meta charset="utf-8"><title>equations.md</title>'
            f'<style>body{{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:1em auto;padding:0 1em}}'
            f'pre{{white-space:pre-wrap;font:13px/1.4 ui-monospace,monospace}}</style><pre>{body}</pre>')


def rounded(array):
    """A nested list of the array's values with DIGITS significant digits (None for None)."""
    if array is None:
        return None
    values = [float(f"{value:.{DIGITS}g}") for value in np.asarray(array, dtype=np.float64).ravel()]
    if np.ndim(array) == 2:
        width = array.shape[1]
        return [values[start:start + width] for start in range(0, len(values), width)]
    return values


class BadRequest(Exception):
    """A request the API cannot use: answered with `status` and {"error": message}."""

    def __init__(self, message, status=HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def parse_json(body):
    """The JSON object in `body` (bytes); anything else, NaN and Infinity included, is a BadRequest."""
    def no_constant(name):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        value = json.loads(body.decode("utf-8"), parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"the body is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise BadRequest(f"expected a JSON object, got {type(value).__name__}")
    return value


def required(request, *keys):
    missing = [key for key in keys if key not in request]
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(missing)}")
    return [request[key] for key in keys]


class DemoApp:
    """The API's answers for one loaded model: each method takes the parsed request and
    returns a JSON-able dict, or raises BadRequest / UsageError."""

    def __init__(self, model, meta, checkpoint):
        self.model, self.meta, self.checkpoint = model, meta, checkpoint
        self.config = meta["config"]
        self.held_out = HeldOutDigits(self.config, meta)
        self._model_lock = threading.Lock()

    def info(self):
        return {**describe_model(self.model, self.meta, self.checkpoint),
                "held_out": {"count": len(self.held_out), "source": self.held_out.source,
                             "seen_in_training": self.held_out.seen_in_training},
                "equations": {name: {"number": number, "href": f"docs/equations.md#{anchor}"}
                              for name, (number, anchor) in EQUATIONS.items()}}

    def digit(self, query):
        values = query.get("index")
        if not values:
            raise BadRequest("missing query parameter: index")
        try:
            index = int(values[0])
        except ValueError:
            raise BadRequest(f"index: expected an integer, got {values[0]!r}") from None
        image, label = self.held_out.digit(index)
        return {"index": index, "label": label, "image": rounded(image)}

    def corrupt(self, request):
        image, noise, seed = required(request, "image", "noise", "seed")
        return {"input": rounded(corrupt_digit(image, noise, seed, self.config))}

    def inspect(self, request):
        image, row = required(request, "image", "row")
        start = time.perf_counter()
        with self._model_lock:
            found = inspect_digit(self.model, image, row, request.get("target"))
        elapsed_ms = (time.perf_counter() - start) * 1e3
        return {"completion": rounded(found.completion), "row": found.row, "objective": found.objective,
                "objective_value": found.objective_value, "grad_image": rounded(found.grad_image),
                "v": rounded(found.v), "grad_v": rounded(found.grad_v), "members": found.members,
                "layers": None if found.layers is None else [{name: rounded(state) for name, state in layer.items()}
                                                             for layer in found.layers],
                "compute_ms": round(elapsed_ms, 1)}


class DemoHandler(BaseHTTPRequestHandler):
    """Routes GET and POST to the page's files and DemoApp; every error is a JSON answer."""

    server_version = "mnist-half-demo"
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may stay silent (a body announced and never sent)
    app = None  # the DemoApp, set by make_server on a subclass

    def log_message(self, format, *args):  # quiet: the page's requests are not news
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        self._answer(lambda: self._checked_host() or self._get(url.path, parse_qs(url.query)))

    def do_POST(self):
        url = urlsplit(self.path)
        self._answer(lambda: self._checked_host() or self._post(url.path))

    def _checked_host(self):
        """A server bound to this machine answers only requests addressed to this machine: a web
        page elsewhere that points a name of its own at 127.0.0.1 (DNS rebinding) gets a 403."""
        if self.server.server_address[0] not in LOOPBACK:
            return None
        host = urlsplit(f"//{self.headers.get('Host', '')}").hostname
        if host not in LOOPBACK_NAMES:
            raise BadRequest(f"this server answers requests for 127.0.0.1 or localhost, not {host!r}",
                             HTTPStatus.FORBIDDEN)
        return None

    def _get(self, path, query):
        if path in PAGE_FILES:
            name, content_type = PAGE_FILES[path]
            return HTTPStatus.OK, (PAGE_DIR / name).read_bytes(), content_type
        if path == "/docs/equations.md" and EQUATIONS_DOC.is_file():
            page = equations_page(EQUATIONS_DOC.read_text(encoding="utf-8"))
            return HTTPStatus.OK, page.encode("utf-8"), "text/html; charset=utf-8"
        if path == "/api/info":
            return self._json(self.app.info())
        if path == "/api/digit":
            return self._json(self.app.digit(query))
        raise BadRequest(f"not found: {path}", HTTPStatus.NOT_FOUND)

    def _post(self, path):
        routes = {"/api/corrupt": self.app.corrupt, "/api/inspect": self.app.inspect}
        if path not in routes:
            raise BadRequest(f"not found: {path}", HTTPStatus.NOT_FOUND)
        return self._json(routes[path](parse_json(self._body())))

    def _body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest("a POST needs a Content-Length", HTTPStatus.LENGTH_REQUIRED)
        if int(length) > MAX_BODY_BYTES:
            raise BadRequest(f"the body is {int(length):,} bytes, more than the {MAX_BODY_BYTES:,} allowed",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        return self.rfile.read(int(length))

    @staticmethod
    def _json(value):
        return HTTPStatus.OK, json.dumps(value).encode("utf-8"), "application/json"

    def _answer(self, respond):
        try:
            status, body, content_type = respond()
        except BadRequest as error:
            status, body, content_type = error.status, self._error_body(error), "application/json"
        except UsageError as error:
            status, body, content_type = HTTPStatus.BAD_REQUEST, self._error_body(error), "application/json"
        except Exception as error:  # a bug, not the request's fault: one line here, a clear answer there
            where = traceback.extract_tb(error.__traceback__)[-1]
            print(f"mnist-half demo: internal error on {self.command} {self.path}: {type(error).__name__}: "
                  f"{error} ({Path(where.filename).name}:{where.lineno})", file=sys.stderr)
            status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, "application/json"
            body = self._error_body(f"internal error ({type(error).__name__}); the server's log says more")
        if status >= 400:
            self.close_connection = True  # a body left unread must not be taken for the next request
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    @staticmethod
    def _error_body(error):
        return json.dumps({"error": str(error)}).encode("utf-8")

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a malformed request line, an unknown method) as JSON too."""
        body = self._error_body(message or HTTPStatus(code).phrase)
        self.close_connection = True
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True  # a page left open does not keep the command from ending


def make_server(app, host="127.0.0.1", port=0):
    """A DemoServer for `app` bound to host:port (port 0: a free one, see .server_address);
    a port in use, or a host that cannot be bound, is a UsageError."""
    handler = type("BoundDemoHandler", (DemoHandler,), {"app": app})
    try:
        return DemoServer((host, port), handler)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use by another program: choose another --port, or leave "
                             f"--port out for a free one") from None
        raise UsageError(f"cannot listen on {host}:{port} ({reason})") from None
