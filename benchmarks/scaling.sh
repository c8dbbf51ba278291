#!/usr/bin/env bash
# Epoch time against the number of processes on this machine (docs/scaling.md): the MLP GAN
# for one epoch and the CNN GAN for 100 steps (--limit 6400), in one process, under torchrun
# with 1 and 2 processes, and with --per-rank-batch. Run it alone on an idle machine (about
# 8 minutes on 2 cores); it prints each run's epoch record: seconds, img/s, processes.
#   bash benchmarks/scaling.sh [DATA_DIR]
set -euo pipefail
data=${1:-${GANSCOPE_DATA_DIR:-../shared/data/fashion-mnist}}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
one() { ganscope train "$@" --data-dir "$data" --no-progress --device cpu --json > /dev/null; }
ranks() {
    local n=$1
    shift
    OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore torchrun --standalone --nproc_per_node "$n" \
        -m ganscope train "$@" --data-dir "$data" --no-progress --device cpu > /dev/null 2>&1
}
for model in "mlp" "cnn --limit 6400"; do
    name=${model%% *}
    # shellcheck disable=SC2086
    {
        one --model $model --epochs 1 --out "$out/$name-1process"
        ranks 1 --model $model --epochs 1 --out "$out/$name-torchrun1"
        ranks 2 --model $model --epochs 1 --out "$out/$name-torchrun2"
        ranks 2 --model $model --epochs 1 --out "$out/$name-torchrun2-per-rank-batch" \
            --per-rank-batch
    }
done
for run in "$out"/*; do
    python3 - "$run" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")]
epoch = [r for r in records if r["kind"] == "epoch"][-1]
print(f"{sys.argv[1].rsplit('/', 1)[-1]:<36} {epoch['seconds']:>8.1f} s "
      f"{epoch['images_per_second']:>9.1f} img/s  processes {epoch['processes']}")
PY
done
