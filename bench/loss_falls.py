"""python -m bench.loss_falls RUN/log.csv: whether a training run learned, its training loss
(eq. 15's RMSE, each row the mean over the iterations since the previous row) lower at its
last logged row than at its first. Prints one PASS or FAIL line; exits 0 on PASS, 1 on FAIL
(bench/gpu_checks.sh runs it after a short --device gpu training).
"""

import argparse
import math

from mnist_half.cli import run_command
from mnist_half.runs import read_log


def loss_falls(path):
    """(passed, line): PASS where the log has two training-loss rows or more, all finite, and
    the last is below the first."""
    iterations, losses = read_log(path)["train"]
    if len(losses) < 2:
        return False, f"FAIL {path}: {len(losses)} training-loss row(s), need 2 or more"
    first, last = (iterations[0], losses[0]), (iterations[-1], losses[-1])
    passed = all(math.isfinite(loss) for loss in losses) and bool(last[1] < first[1])
    return passed, (f"{'PASS' if passed else 'FAIL'} {path}: training loss {first[1]:.5f} at iteration {first[0]}, "
                    f"{last[1]:.5f} at iteration {last[0]}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.loss_falls", description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="a run's log.csv")
    args = parser.parse_args(argv)
    passed, line = loss_falls(args.log)
    print(line)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(run_command(main))
