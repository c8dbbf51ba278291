#!/usr/bin/env bash
# The CNN GAN's preset screen and confirmation (issue 15) in one GPU call of under 9 minutes,
# for a session that has the device: 10-epoch CNN runs are ~100 minutes each on the 2-core CPU.
# Run benchmarks/gpu_check.sh first (the standing order).
#
# Same set-up as gpu_check.sh (.gpu-data carried), then on the device:
#   GANSCOPE_DATA_DIR=$PWD/.gpu-data bash benchmarks/presets_gpu.sh
#
# The runs go JOBS at a time (one process each, one CPU thread each). On an H100 seven at once
# took 184-231 s each for 10 epochs (12-16 s per epoch: the GPU time-slices between
# processes); two at once 7.1 s per epoch each, three at once 7.3-7.4 s: default 3. Seconds
# per epoch of runs that shared the GPU are not comparable with a run alone.
# 1. screen (SCREEN, seed 0), confirmation (CONFIRM, seeds 1 and 2) and the later screen
#    (LATER, seed 0), 10 epochs, together, in that order. The defaults, in order of need: the
#    improved preset, the seed preset and R1's weight 1 (the preset before), seeds 0-2 of
#    each on one GPU (the preset, R1 3, met the target, FID at most half the seed preset's,
#    on one CPU over 3 seeds, and has not run on a GPU: docs/presets.md), R1's weight 10;
#    then two more candidates (Adam's (0, 0.99); the hinge loss) and the preset's ablation
#    (without --ema, which is read from the improved runs' own weights; without R1, without
#    --lr-d, without --lr);
# 2. the best variant (BEST; default empty: the screen's, lowest FID among those that keep
#    every class at 5% or more, else the lowest FID; its seeds 1 and 2 unless the
#    confirmation had them);
# 3. that variant's seed-0 run for LONG (30) epochs (continuing a 10-epoch one if OUT holds it).
# Every run has its own timeout (the budget left); what finished is in results.jsonl.
# A dry run on the CPU, to check the script itself:
#   DEVICE=cpu JOBS=2 EPOCHS=1 LONG=2 SCREEN="seed ema" CONFIRM=seed LATER= BEST= \
#     EXTRA="--limit 64 --n 100"
# or, as the next GPU session will run it:
#   DEVICE=cpu EPOCHS=1 LONG=2 EXTRA="--limit 64 --n 100"
# The earlier screens: SCREEN="ema+r1+ttur-lr2x ema+r1+ttur-lr3x ema+r1+ttur-lr4x r1+ttur
# ema+ttur" (both learning rates x2-x4, the improved preset's line before x3 became it).
# Everything lands in $OUT (or ./presets-gpu): results.jsonl, table.md, log.txt, logs/.
# Copy the table into docs/presets.md; a screen's better recipe replaces PRESETS["improved"]
# ["cnn"] in presets.py once 3 seeds confirm it.
set -uo pipefail
out=${OUT:-presets-gpu}
mkdir -p "$out/logs"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
: "${GANSCOPE_DATA_DIR:?set it to the folder with Fashion-MNIST}"
budget=${PRESETS_GPU_SECONDS:-530}
jobs_at_once=${JOBS:-3}
epochs=${EPOCHS:-10}
long=${LONG:-30}
log="$out/log.txt"
# the preset, with one part moved, less one ingredient (benchmarks/presets.py's names)
screen=${SCREEN-"improved seed improved+r1_gamma=1 improved+r1_gamma=10"}
confirm=${CONFIRM-"improved seed improved+r1_gamma=1"}
later=${LATER-"improved+beta1=0+beta2=0.99 improved+loss=hinge improved-ema improved-r1_gamma
improved-lr_d improved-lr"}

bench() {  # bench VARIANT SEED EPOCHS: one run of benchmarks/presets.py, budget-limited
    local limit=$((budget - SECONDS)) name="$1-s$2-e$3"
    if ((limit < 20)); then
        echo "skipped (budget spent): $name" | tee -a "$log"
        return 1
    fi
    # shellcheck disable=SC2086 # EXTRA is a list of flags
    timeout --kill-after=5 "$limit" python3 benchmarks/presets.py --model cnn \
        --device "${DEVICE:-cuda}" --precision "${PRECISION:-fp32}" --out "$out" ${EXTRA:-} \
        --variants "$1" --seeds "$2" --epochs "$3" > "$out/logs/$name.log" 2>&1
    local status=$?
    echo "$name: exit $status at ${SECONDS} s: $(tail -n 1 "$out/logs/$name.log")" | tee -a "$log"
}
pool() {  # pool "VARIANT SEED" ...: the runs, JOBS at a time
    local job
    for job in "$@"; do
        while (($(jobs -rp | wc -l) >= jobs_at_once)); do wait -n; done
        # shellcheck disable=SC2086 # job is "VARIANT SEED"
        bench $job "$epochs" &
    done
    wait
}

python3 -c "import torch; print(torch.__version__, torch.cuda.is_available() and \
torch.cuda.get_device_name())" | tee "$log"
runs=()
for variant in $screen; do runs+=("$variant 0"); done
for variant in $confirm; do runs+=("$variant 1" "$variant 2"); done
for variant in $later; do runs+=("$variant 0"); done
((${#runs[@]})) && pool "${runs[@]}"
best=${BEST-}  # empty: the screen's best
picked=0
[[ -n $best ]] || picked=1 best=$(python3 - "$out/results.jsonl" "$epochs" <<'PY'
import json, sys
try:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
except FileNotFoundError:
    rows = []
rows = [r for r in rows if r["epochs"] == int(sys.argv[2]) and r["seed"] == 0
        and r["variant"] != "seed"]
balanced = [r for r in rows if r["rarest_share"] >= 0.05] or rows
print(min(balanced, key=lambda r: r["fid"])["variant"] if balanced else "")
PY
)
echo "best variant: ${best:-none}" | tee -a "$log"
if [[ -n $best ]]; then
    if ((picked)) && [[ " $confirm " != *" $best "* ]]; then
        pool "$best 1" "$best 2"
    fi
    bench "$best" 0 "$long"
fi
if [[ -f $out/results.jsonl ]]; then
    python3 benchmarks/presets.py --out "$out" --table > "$out/table.md"
    cat "$out/table.md"
fi
echo "total: ${SECONDS} s" | tee -a "$log"
