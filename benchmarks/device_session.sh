#!/usr/bin/env bash
# One call of the device tool for a session that has a GPU: the standing order's check
# (gpu_check.sh), then the CNN preset runs (presets_gpu.sh) in the time left, with every
# output packed so that it comes back (the tool returns at most 8 files from $OUT).
#
# Here, once:
#   mkdir -p .gpu-data && cp ../shared/data/fashion-mnist/*.gz .gpu-data/
#   echo /.gpu-data/ >> .git/info/exclude
# then on the device (carry [".gpu-data"], timeout_s 580; the machine's start adds ~35 s):
#   GANSCOPE_DATA_DIR=$PWD/.gpu-data bash benchmarks/device_session.sh
#
# SESSION_SECONDS (default 560) bounds the whole script; CHECK=0 skips gpu_check.sh (once it
# has passed), PRESETS=0 the preset runs; presets_gpu.sh's variables (BEST, CONFIRM, LATER, SCREEN,
# JOBS, ...) pass through. Comes back in $OUT: logs.tgz (every log, summary, result and
# table; no weights), metrics.tgz (the runs' metrics.jsonl) and gens-*.tgz (the seed-0 runs'
# generators after 10 and 30 epochs, for sample grids from the same z here).
set -uo pipefail
dest=$(realpath -m "${OUT:-device-session}")
mkdir -p "$dest"
work=$(mktemp -d)
: "${GANSCOPE_DATA_DIR:?set it to the folder with Fashion-MNIST}"
total=${SESSION_SECONDS:-560}

if [[ ${CHECK:-1} != 0 ]]; then
    OUT=$work/check timeout 370 bash benchmarks/gpu_check.sh > "$work/check.out" 2>&1
    echo "gpu_check.sh: exit $? (failed steps) at ${SECONDS} s"
    cat "$work/check/summary.txt" "$work/check/"*-10.txt 2>/dev/null
fi
if [[ ${PRESETS:-1} != 0 ]] && ((total - SECONDS > 60)); then
    OUT=$work/presets PRESETS_GPU_SECONDS=$((total - 15 - SECONDS)) \
        bash benchmarks/presets_gpu.sh > "$work/presets.out" 2>&1
    grep -v '^|' "$work/presets/log.txt"
    cat "$work/presets/table.md" 2>/dev/null
fi

cd "$work" || exit 1
tar czf "$dest/logs.tgz" --exclude='*.pt' --exclude='*.gif' --exclude=metrics.jsonl .
mapfile -t metrics < <(find . -name metrics.jsonl)
((${#metrics[@]})) && tar czf "$dest/metrics.tgz" "${metrics[@]}"
shopt -s nullglob
generators=(presets/runs/*-s0-e*/checkpoints/generator_epoch_0[13]0.pt)
for ((i = 0; i < ${#generators[@]} && i < 20; i += 4)); do  # ~3.6 MB each, 16 MiB a file
    tar czf "$dest/gens-$((i / 4)).tgz" "${generators[@]:i:4}"
done
ls -la "$dest"
echo "done at ${SECONDS} s"
