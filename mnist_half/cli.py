"""What every command shares: a bad input is one clear line on stderr and exit status 2."""

import sys

from tinynet.backend import DeviceError

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
