#!/usr/bin/env bash
# The prepared GPU check: everything the CUDA path needs verified, in about 6 minutes on an
# H100/H200, so that one device session can run it, fix what fails and run it again.
# It needs what the device image has (torch with CUDA, tqdm, matplotlib, torchmetrics, scipy,
# pytest, filelock) plus pydantic, which the image's package list (2026-11-17) does not name
# (ganscope.cli imports the explorer's request models), and Fashion-MNIST in $GANSCOPE_DATA_DIR.
#
# From a checkout whose ../shared holds the data, once:
#   mkdir -p .gpu-data && cp ../shared/data/fashion-mnist/*.gz .gpu-data/
#   printf '/.gpu-data/\n/.whl/\n' >> .git/info/exclude
#   python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl pydantic==2.14.4 \
#     pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0
# then on the device (carry .gpu-data and .whl; timeout_s 450):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site GANSCOPE_DATA_DIR=$PWD/.gpu-data bash benchmarks/gpu_check.sh
#
# Then, on the same warm machine, benchmarks/conditional_gpu.sh times what the label costs.
#
# Every step runs under its own timeout and keeps its log in $OUT (or ./gpu-check):
# NAME.log per step, summary.txt with each step's status and seconds, and the numbers the
# docs need (bench-graph.json, bench-eager.json, mlp10.txt, cnn10.txt). The exit status is
# the number of failed steps (0: all passed). A step that would overrun the 6-minute total
# is skipped and counts as failed.
set -uo pipefail
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 GANSCOPE_TEST_DATA=${GANSCOPE_DATA_DIR:?}
export PYTHONWARNINGS=default
budget=${GPU_CHECK_SECONDS:-360}
failed=0
: > "$out/summary.txt"

# step NAME SECONDS COMMAND... and whole_run MODEL [PRESET [CONDITIONING]]
source "$(dirname "$0")/gpu_steps.sh"

step device 60 python3 -c "import torch; print(torch.__version__, torch.version.cuda, \
torch.cuda.get_device_name(), torch.cuda.nccl.version())"
cat "$out/device.log"

# 1. Captured vs eager on every state tensor (fp32, bf16), a forced capture failure, resume.
step cuda-graph-tests 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py

# 2. Textbook loop vs ganscope's path, graph on and off (img/s of both GANs).
step bench-graph 60 sh -c "python3 -m ganscope bench --device cuda --steps 900 --repeats 1 \
--cuda-graph on --json > '$out/bench-graph.json'"
step bench-eager 55 sh -c "python3 -m ganscope bench --device cuda --steps 900 --repeats 1 \
--cuda-graph off --json > '$out/bench-eager.json'"

# 3. DDP on NCCL with one rank (the graph is not attempted there: eager, with the reason).
step ddp-nccl-1rank 60 python3 -m torch.distributed.run --standalone --nproc_per_node 1 \
    -m ganscope train --model cnn --epochs 1 --limit 6400 --device cuda \
    --out "$out/ddp-run" --no-progress
rm -rf "$out/ddp-run"

# 4. The 10-epoch times of both GANs, graph on, each as a whole run.
step mlp-10-epochs 60 bash -c "whole_run mlp"
step cnn-10-epochs 90 bash -c "whole_run cnn"
# The improved presets' steps (moving average, spectral norm; lazy R1 as a second graph)
# captured too: time per epoch against the seed preset's just above (the issue allows 1.5x).
step mlp-improved-10-epochs 60 bash -c "whole_run mlp improved"
step cnn-improved-10-epochs 90 bash -c "whole_run cnn improved"

# 5. The main job on CUDA, quick profile.
step reproduce-quick 90 python3 -m ganscope reproduce --quick --device cuda \
    --out "$out/reproduce" --no-progress
rm -rf "$out/reproduce"

echo "total: ${SECONDS} s, failed steps: $failed" | tee -a "$out/summary.txt"
exit "$failed"
