"""python -m mnist_half.demo: a page in the browser to draw the top half of a digit and watch the
decoder redraw the rest, row by row (eqs. 3, 4, 8-14), with each step's gates and states and the
gradient that tinynet's backward pass sends from the chosen row to the image.

It starts a web server on this machine (127.0.0.1, a free port unless --port) and prints its
address; open it in a browser (--open does that). The page needs no network: its files ship
with the package and the model runs here, on the CPU. Without --checkpoint the CNN-LSTM that
ships with the package serves; a CNN-CNN run's checkpoint works too (no gates to show).
Ctrl-C stops it. What the page shows: docs/demo.md.
"""

import argparse
import webbrowser

from tinynet.threads import set_threads

from .cli import UsageError, run_command
from .config import PRETRAINED
from .demo_server import DemoApp, make_server
from .inspection import load_for_inspection


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mnist_half.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(PRETRAINED),
                        help="a run's checkpoint.npz or run folder (default: the CNN-LSTM that ships with the package)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535 (0: a free one), got {args.port}")
    model, meta = load_for_inspection(args.checkpoint)
    app = DemoApp(model, meta, args.checkpoint)
    set_threads(1)  # one digit at a time: more threads only wait on each other (and on other programs)
    server = make_server(app, args.host, args.port)
    try:
        host, port = server.server_address[:2]
        url = f"http://{host}:{port}/"
        info = app.info()
        print(f"mnist-half demo: {info['label']} ({args.checkpoint}, {info['trained_for']}); "
              f"held-out digits: {info['held_out']['source']}")
        print(f"serving on {url}  (Ctrl-C stops)", flush=True)
        if args.open:
            webbrowser.open(url)
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    run_command(main)
