#!/usr/bin/env bash
# The GPU checks of one session on a CUDA machine, in the order of their value: the fused
# kernels and the CUDA graph, the step benchmark side by side with PyTorch, where a step's
# time goes (graph_parts), the training speed (the paper's 500k-iteration run), every
# [gpu] test variant, then the scaling tables (batch and hidden size).
# Usage: bash bench/gpu_checks.sh OUT_DIR [CHECK ...]   (logs and JSON lines go to OUT_DIR;
# the CHECK names, e.g. step_lstm gpu_tests, pick some of the checks below, default all)
set -u
out=${1:-gpu-checks}
shift || true
only=" $* "
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MNIST_HALF_OFFLINE=1
py=${PYTHON:-python3}
run() {  # run NAME SECONDS COMMAND...: log to OUT/NAME.log, keep going on failure
    local name=$1 seconds=$2; shift 2
    [[ "$only" == "  " || "$only" == *" $name "* ]] || return 0
    echo "=== $name: $*"
    timeout "$seconds" "$@" > "$out/$name.log" 2>&1
    echo "=== $name: exit $? after ${SECONDS}s total"
    tail -n 25 "$out/$name.log"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$py -c "import sys, numpy, cupy, numba; print(sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__, 'numba', numba.__version__)"
run kernels 100 $py -m pytest -q -x -p no:cacheprovider tests/tinynet/test_gpu_kernels.py tests/mnist_half/test_gpu_training.py
run step_lstm 75 $py -m bench.step --device gpu --model cnn-lstm --compare-torch --iters 50 --gap 0 --json
run step_cnn 50 $py -m bench.step --device gpu --model cnn-cnn --compare-torch --iters 50 --gap 0 --json
run step_cnn_tf32 50 $py -m bench.step --device gpu --model cnn-cnn --compare-torch --torch-tf32 --iters 50 --gap 0 --json
run step_cnn_eager 50 $py -m bench.step --device gpu --model cnn-cnn --no-cuda-graph --compare-torch --iters 50 --gap 0 --json
run step_lstm_eager 40 $py -m bench.step --device gpu --model cnn-lstm --no-cuda-graph --iters 5 --warmup 2 --gap 0 --json
run graph_parts 60 $py -m bench.graph_parts --json
run train_speed 75 $py -m bench.train_speed --device gpu --iters 1000 --json
run gpu_tests 150 $py -m pytest -q -p no:cacheprovider -m gpu tests
run scaling 200 $py -m bench.scaling --device gpu --model cnn-lstm --compare-torch --iters 20 --gap 0
