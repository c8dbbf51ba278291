# Sourced by the prepared GPU scripts (gpu_check.sh, conditional_gpu.sh): their two helpers.
# The caller sets $out (the folder of logs), $budget (the seconds all steps may take) and
# $failed (0), and truncates "$out/summary.txt".

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a timeout, log and time it
    local name=$1 limit=$2 started=$SECONDS status
    shift 2
    local left=$((budget - SECONDS))
    if ((left < 10)); then
        echo "$name: SKIPPED (the ${budget}-second budget is spent)" | tee -a "$out/summary.txt"
        failed=$((failed + 1))
        return
    fi
    ((limit > left)) && limit=$left
    timeout --kill-after=5 "$limit" "$@" > "$out/$name.log" 2>&1
    status=$?
    local took=$((SECONDS - started))
    if ((status == 0)); then
        echo "$name: ok (${took} s)" | tee -a "$out/summary.txt"
    else
        ((status == 124 || status == 137)) && status="timeout after ${limit} s"
        echo "$name: FAILED ($status, ${took} s; log: $name.log)" | tee -a "$out/summary.txt"
        tail -n 15 "$out/$name.log"
        failed=$((failed + 1))
    fi
}

whole_run() {  # whole_run MODEL [PRESET [CONDITIONING]]: a 10-epoch run, timed as a whole
    local model=$1 preset=${2:-seed} conditioning=${3:-none} started name
    name=$model-10${2:+-$2}${3:+-$3}
    started=$(date +%s.%N)
    python3 -m ganscope train --model "$model" --preset "$preset" --epochs 10 --device cuda \
        --conditional "$conditioning" --cuda-graph on --out "$out/$name" --no-progress \
        --json > "$out/$name.json" || return 1
    python3 - "$out/$name" "$started" <<'EOF' | tee "$out/$name.txt"
import json, sys, time
records = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")]
epochs = [r for r in records if r["kind"] == "epoch"]
last = epochs[-1]
print(f"whole run (start to exit, data loading and figures included): "
      f"{time.time() - float(sys.argv[2]):.1f} s")
print(f"training steps of 10 epochs: {sum(r['seconds'] for r in epochs):.1f} s; "
      f"img/s per epoch: {[r['images_per_second'] for r in epochs]}")
print(f"final epoch: loss_D {last['loss_D']:.4f} loss_G {last['loss_G']:.4f} "
      f"D(x) {last['D(x)']:.4f} D(G(z)) {last['D(G(z))']:.4f}")
print(f"precision {last['precision']}, cuda_graph {last['cuda_graph']}")
assert all(r["cuda_graph"] for r in epochs), "some epochs ran eagerly: capture failed"
EOF
    local status=${PIPESTATUS[0]}
    rm -rf "$out/$name"
    return "$status"
}
export -f whole_run
export out
