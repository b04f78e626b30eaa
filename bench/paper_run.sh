#!/usr/bin/env bash
# The paper's run (section 5.3: --preset paper, 500k iterations of batch 100 with Adam) in
# pieces that fit short stretches of machine time. Each call trains for at most SECONDS, then
# stops the run as Ctrl-C does (a checkpoint at the current iteration, exit status 130); the
# next call continues it exactly (--resume). Call it again until it says the run is complete:
# the last piece ends as `python -m mnist_half.train` does, with the evaluation and figures.
# Usage: bash bench/paper_run.sh OUT DATA_DIR [SECONDS [TRAIN FLAG ...]]
#   e.g. bash bench/paper_run.sh runs/paper ../shared/data/mnist-train 540 --device gpu
set -u
if [ $# -lt 2 ]; then
    echo "usage: bash bench/paper_run.sh OUT DATA_DIR [SECONDS [TRAIN FLAG ...]]" >&2
    exit 2
fi
out=$1 data=$2 seconds=${3:-540}
shift $(( $# < 3 ? $# : 3 ))
py=${PYTHON:-python3}
args=(--preset paper --data "$data" --out "$out" --no-progress "$@")
[ -f "$out/checkpoint.npz" ] && args+=(--resume)
timeout -s INT -k 120 "$seconds" "$py" -m mnist_half.train "${args[@]}"
status=$?
last=$("$py" -c "import sys; from mnist_half.checkpoint import load_checkpoint; print(load_checkpoint(sys.argv[1])[2]['iteration'])" "$out/checkpoint.npz" 2>/dev/null)
case $status in
    0) echo "paper_run: the run in $out is complete" ;;
    130|124) echo "paper_run: piece stopped at iteration ${last:-?}; run the same command again to continue" ;;
    *) echo "paper_run: training failed (exit status $status); see the lines above" >&2 ;;
esac
exit $status
