"""What every command shares: its common flags, and how it ends when it cannot go on: one
clear line on stderr, never a traceback, and a documented exit status (README, Commands):
2 for a bad input (a flag, a file, a folder), 3 for a training that diverged, 130 for Ctrl-C
(and 128 + the signal's number for a training stopped by SIGTERM or SIGHUP, mnist_half.training)."""

import math
import sys

from tinynet.backend import DEVICES, DeviceError

from .checkpoint import CheckpointError
from .data import DataError
from .files import FileError

EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C


class UsageError(ValueError):
    """Input the command cannot use (a wrong shape, a NaN, an unreadable file, ...)."""


class TrainingDiverged(RuntimeError):
    """The loss or the weights of a training run became NaN or infinite; the message says
    where, which checkpoint was kept and what to try."""


def fail(message, status=EXIT_USAGE):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def run_command(main, argv=None):
    """Call main(argv): the project's input errors become one `error:` line and exit status
    2, a diverged training one line and 3, Ctrl-C (at any moment main does not handle it
    itself) one line and 130."""
    try:
        return main(argv)
    except (UsageError, DataError, CheckpointError, DeviceError, FileError) as error:
        fail(error)
    except TrainingDiverged as error:
        fail(error, EXIT_DIVERGED)
    except KeyboardInterrupt:
        print("\nmnist-half: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None


def add_device_arg(parser, default="auto"):
    """--device auto|cpu|gpu (auto: the GPU when CuPy finds one)."""
    parser.add_argument("--device", choices=DEVICES, default=default,
                        help="auto: the GPU when CuPy finds one, else the CPU")


def add_progress_arg(parser):
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def require_finite(**values):
    """A UsageError for the first of the flags `values` ({name: value}) that is NaN or infinite."""
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number, got {value}")


def require_positive(**values):
    """A UsageError for the first of the flags `values` ({name: value}) that is given and not positive."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")


def require_samples(samples):
    """A --samples value below 1 is a UsageError."""
    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
