"""What every command shares: its common flags, and a bad input as one clear line on stderr
with exit status 2."""

import sys

from tinynet.backend import DEVICES, DeviceError

from .checkpoint import CheckpointError
from .data import DataError

EXIT_USAGE = 2


class UsageError(ValueError):
    """Input the command cannot use (a wrong shape, a NaN, an unreadable file, ...)."""


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def run_command(main, argv=None):
    """Call main(argv), turning the project's input errors into `fail`."""
    try:
        return main(argv)
    except (UsageError, DataError, CheckpointError, DeviceError) as error:
        fail(error)


def add_device_arg(parser, default="auto"):
    """--device auto|cpu|gpu (auto: the GPU when CuPy finds one)."""
    parser.add_argument("--device", choices=DEVICES, default=default,
                        help="auto: the GPU when CuPy finds one, else the CPU")


def add_progress_arg(parser):
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def require_positive(**values):
    """A UsageError for the first of the flags `values` ({name: value}) that is given and not positive."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")


def require_samples(samples):
    """A --samples value below 1 is a UsageError."""
    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
