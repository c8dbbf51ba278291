#!/usr/bin/env bash
# What the label costs on a GPU (issue 33: seconds per epoch at most 1.2x the unconditional
# run of the same preset on the same device): the improved presets' 10-epoch runs of both
# GANs, unconditional and with the dual projection D (the costliest of the chosen variants on
# a CPU, docs/conditional.md), CUDA graph on, each timed as a whole run, then the ratios of
# their training steps. About 2.5 minutes on an H100/H200; run after benchmarks/gpu_check.sh
# on the same warm machine, set up as its header says (carry .gpu-data and .whl):
#   PYTHONPATH=/tmp/site GANSCOPE_DATA_DIR=$PWD/.gpu-data bash benchmarks/conditional_gpu.sh
# Logs and NAME.txt per run in $OUT (or ./conditional-gpu); the exit status is the number of
# failed steps.
set -uo pipefail
out=${OUT:-conditional-gpu}
mkdir -p "$out"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
: "${GANSCOPE_DATA_DIR:?set it to the folder of the Fashion-MNIST .gz files}"
budget=${GPU_CHECK_SECONDS:-240}
failed=0
: > "$out/summary.txt"

# step NAME SECONDS COMMAND... and whole_run MODEL [PRESET [CONDITIONING]]
source "$(dirname "$0")/gpu_steps.sh"

for model in mlp cnn; do
    step "$model-improved-10-epochs" 90 bash -c "whole_run $model improved"
    step "$model-improved-dual-10-epochs" 90 bash -c "whole_run $model improved dual"
done

python3 - "$out" <<'PY' | tee -a "$out/summary.txt"
import re, sys
from pathlib import Path

def seconds(name):
    path = Path(sys.argv[1]) / f"{name}.txt"
    found = path.exists() and re.search(r"training steps of 10 epochs: ([0-9.]+) s", path.read_text())
    return float(found.group(1)) if found else None

for model in ("mlp", "cnn"):
    plain, dual = seconds(f"{model}-10-improved"), seconds(f"{model}-10-improved-dual")
    if plain and dual:
        print(f"{model} improved: unconditional {plain:.1f} s, dual {dual:.1f} s of training "
              f"steps in 10 epochs: {dual / plain:.2f}x (target: at most 1.2x)")
    else:
        print(f"{model} improved: a run is missing, no ratio")
PY
echo "total: ${SECONDS} s, failed steps: $failed" | tee -a "$out/summary.txt"
exit "$failed"
