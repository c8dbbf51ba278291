#!/usr/bin/env bash
# How often a finished two-rank CPU run fails at exit: N runs of `torchrun --standalone
# --nproc_per_node 2 -m ganscope train --model cnn --limit 64 --epochs 1` (one step; gloo,
# one thread per rank) beside BUSY single-thread busy loops, as a loaded CI machine runs it.
# Each failing run's log is kept; a rank that aborts at exit prints "terminate called without
# an active exception" and exits with SIGABRT (-6). docs/scaling.md has the counts.
#
#   benchmarks/torchrun_exit.sh [RUNS=40] [BUSY=2]
#
# Needs Fashion-MNIST (GANSCOPE_DATA_DIR or ../shared/data/fashion-mnist). Exits non-zero
# if any run failed.
set -uo pipefail
runs=${1:-40}
busy=${2:-2}
data=${GANSCOPE_DATA_DIR:-$(dirname "$0")/../../shared/data/fashion-mnist}
out=$(mktemp -d /tmp/torchrun_exit.XXXXXX)
loops=()
for ((k = 0; k < busy; k++)); do
    python3 -c "while True: pass" &
    loops+=($!)
done
trap 'kill "${loops[@]}" 2>/dev/null' EXIT

failed=0
aborted=0
started=$SECONDS
for ((i = 1; i <= runs; i++)); do
    OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore timeout 300 \
        python -m torch.distributed.run --standalone --nproc_per_node=2 -m ganscope train \
        --model cnn --limit 64 --epochs 1 --precision fp32 --device cpu --no-progress \
        --data-dir "$data" --out "$out/run$i" > "$out/log$i" 2>&1
    status=$?
    rm -rf "$out/run$i"
    if ((status == 0)); then
        rm -f "$out/log$i"
    else
        failed=$((failed + 1))
        grep -q "terminate called without an active exception" "$out/log$i" &&
            aborted=$((aborted + 1))
        echo "run $i: exit status $status (log: $out/log$i)"
    fi
done
echo "torch $(python -c 'import torch; print(torch.__version__)'), $(nproc) cores," \
    "$busy busy loops: $failed of $runs two-rank runs failed ($aborted aborted at exit)" \
    "in $((SECONDS - started)) s"
((failed == 0))
