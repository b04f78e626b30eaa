#!/usr/bin/env bash
# The GPU checks of a CUDA machine, in at most 9 minutes (the timeouts below, 535 s in all):
# the machine and the versions, every [gpu] test, the training step side by side with PyTorch
# (bench.step, both models), where a step's time goes (bench.graph_parts), and a short
# --device gpu training whose loss must fall (bench.loss_falls on its log.csv).
# Usage: bash bench/gpu_checks.sh OUT [CHECK ...]   (CHECK names, e.g. gpu_tests step_lstm,
# pick some of the checks below; default all). Each check logs to OUT/CHECK.log and adds one
# line to OUT/summary.txt: its name, its exit status (124: timed out) and its seconds. The
# script exits 1 when a check failed. PYTHON names the interpreter (default python3).
set -u
if [[ $# -lt 1 ]]; then
    echo "usage: bash bench/gpu_checks.sh OUT [CHECK ...]" >&2
    exit 2
fi
out=$1
shift
only=" $* "
mkdir -p "$out"
: > "$out/summary.txt"
export PYTHONUNBUFFERED=1 MNIST_HALF_OFFLINE=1
export GPU_CHECKS_PYTHON=${PYTHON:-python3}
py=$GPU_CHECKS_PYTHON
failed=0
chosen() { [[ "$only" == "  " || "$only" == *" $1 "* ]]; }
run() {  # run NAME SECONDS COMMAND...: log to OUT/NAME.log, one line to OUT/summary.txt, go on after a failure
    local name=$1 seconds=$2 status=0 start=$SECONDS
    shift 2
    chosen "$name" || return 0
    echo "=== $name (at most ${seconds}s): $*"
    timeout "$seconds" "$@" > "$out/$name.log" 2>&1 || status=$?
    echo "$name exit $status $((SECONDS - start))s" | tee -a "$out/summary.txt"
    tail -n 25 "$out/$name.log"
    [[ $status == 0 ]] || failed=1
}
run machine 15 bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader &&
    "$GPU_CHECKS_PYTHON" -c "import sys, numpy, cupy, numba; print(sys.version.split()[0], \"numpy\", numpy.__version__,
        \"cupy\", cupy.__version__, \"numba\", numba.__version__)"'
run gpu_tests 210 "$py" -m pytest -q -p no:cacheprovider -m gpu tests
run step_lstm 75 "$py" -m bench.step --device gpu --model cnn-lstm --compare-torch --iters 50 --gap 0 --json
run step_cnn 45 "$py" -m bench.step --device gpu --model cnn-cnn --compare-torch --iters 50 --gap 0 --json
run graph_parts 60 "$py" -m bench.graph_parts --json
if chosen train; then rm -rf "$out/train_run"; fi  # a fresh run each time (train never overwrites)
run train 120 "$py" -m mnist_half.train --device gpu --iters 300 --members 1 --out "$out/train_run" --no-progress
run loss_falls 10 "$py" -m bench.loss_falls "$out/train_run/log.csv"
echo "=== summary ($out/summary.txt)"
cat "$out/summary.txt"
exit "$failed"
