#!/usr/bin/env bash
# The prepared GPU check of the training speed work, sized for one device call (about 8
# minutes on an H100/H200). It needs only what the device image already has (torch, tqdm,
# matplotlib, torchmetrics, scipy, pytest) and Fashion-MNIST in $GANSCOPE_DATA_DIR.
#
# From a checkout whose ../shared holds the data, once:
#   mkdir -p .gpu-data && cp ../shared/data/fashion-mnist/*.gz .gpu-data/
#   echo /.gpu-data/ >> .git/info/exclude
# then on the device (carry .gpu-data):
#   GANSCOPE_DATA_DIR=$PWD/.gpu-data bash benchmarks/gpu_check.sh
# Results land in $OUT (or ./gpu-check): device.txt, tests.txt, bench.json, eager.json,
# roofline.txt, cnn10.txt.
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 GANSCOPE_TEST_DATA=$GANSCOPE_DATA_DIR
py=python3

$py -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
    | tee "$out/device.txt"

# 1. The CUDA graph tests (captured == eager, resume), which a CPU skips.
$py -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py 2>&1 | tee "$out/tests.txt"

# 2. Textbook loop vs ganscope's path, graph on (the default) and off.
$py -m ganscope bench --device cuda --steps 8000 --repeats 2 --json > "$out/bench.json"
$py -m ganscope bench --device cuda --steps 3000 --repeats 1 --cuda-graph off --json \
    > "$out/eager.json"

# 3. How near the step is to the GPU's matmul peak.
$py benchmarks/train_roofline.py --device cuda --steps 200 | tee "$out/roofline.txt"

# 4. The issue's whole-run target: the CNN GAN's 10 epochs (seconds in each epoch record).
$py -m ganscope train --model cnn --epochs 10 --device cuda --out "$out/cnn10" --no-progress \
    > /dev/null
$py - "$out/cnn10" <<'EOF' | tee "$out/cnn10.txt"
import json, sys
records = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")]
epochs = [r for r in records if r["kind"] == "epoch"]
print("epoch seconds:", [r["seconds"] for r in epochs])
print("steps of 10 epochs: %.1f s" % sum(r["seconds"] for r in epochs))
print("precision:", epochs[-1]["precision"], "cuda_graph:", epochs[-1]["cuda_graph"])
EOF
rm -rf "$out/cnn10"
