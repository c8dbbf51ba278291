#!/usr/bin/env bash
# Tests that must be able to fail, shown failing: each case puts one deliberate defect into a
# scratch worktree of HEAD and runs the test that must catch it ("1 failed" is the pass mark
# here). The last case shows the old CUDA-graph emulation (a replay that re-reads the host)
# passing a defect the new one catches. About 2 minutes on 2 cores:
#   bash tools/broken_builds.sh       (with the virtual environment of README's set-up active)
set -u
cd "$(dirname "$0")/.."
export GANSCOPE_TEST_DATA=${GANSCOPE_TEST_DATA:-$(realpath ../shared/data/fashion-mnist)}
broken=$(mktemp -d)/broken
git worktree add -q "$broken" HEAD
trap 'git worktree remove --force "$broken"' EXIT
run() {  # run NAME SED-FILE SED-EXPR TEST
    local name=$1 file=$2 expr=$3 test=$4
    (cd $broken && git checkout -q -- . && sed -i "$expr" "$file" && git diff --stat | tail -1 &&
     PYTHONPATH=$broken/src timeout 600 python -m pytest -q -p no:cacheprovider -x "$test" 2>&1 | tail -1 |
     sed "s/^/  $name: /")
}
run label-smoothing-ignored src/ganscope/objective.py 's/torch.full_like(d_real, 1 - train.label_smoothing)/torch.full_like(d_real, 1.0)/' "tests/test_objective.py::test_each_technique_trains_resumes_exactly_and_keeps_the_report_generator[label-smoothing]"
run is-complete-ignores-a-key src/ganscope/readings.py 's/needed = {\*_CSV_FIELDS, "minus_class_index", "plus_class_index", "minus_brightness_ci",/needed = {*_CSV_FIELDS[:-1], "minus_class_index", "minus_brightness_ci",/' "tests/test_readers_properties.py::test_an_analysis_record_is_complete_only_with_what_its_readers_use"
run every-epoch-is-the-latest src/ganscope/runs.py 's/            path = self.snapshot_path(epoch)/            path = self.checkpoint_path/' "tests/test_runs.py::test_generator_by_epoch"
run zero-defaults-not-shown src/ganscope/cli.py 's/            elif default is not None:/            elif default:/' "tests/test_cli.py::test_each_flag_default_is_the_options_default"
run ema-weight-from-the-host src/ganscope/training.py 's/            weight = {"ema_weight": inputs\["ema_weight"\]} if ema_weights is not None else {}/            weight = {}/' "tests/test_cuda_graph.py::test_improved_recipes_are_captured_and_train_exactly_like_the_eager_loop"
run upward-import src/ganscope/training.py 's/^from .state import TrainState, captures$/from .state import TrainState, captures\nfrom .runs import Run  # noqa: F401/' "tests/test_house.py"
(cd $broken && git checkout -q -- .)
# The same defect against the old emulation (a replay that re-reads the host): it passes.
(cd $broken && git checkout -q -- . &&
 sed -i 's/            weight = {"ema_weight": inputs\["ema_weight"\]} if ema_weights is not None else {}/            weight = {}/' src/ganscope/training.py &&
 sed -i 's/    FROZEN = ("step", "epoch", "noise_std")/    FROZEN = ()/' tests/test_cuda_graph.py && git diff --stat | tail -1 &&
 PYTHONPATH=$broken/src timeout 600 python -m pytest -q -p no:cacheprovider "tests/test_cuda_graph.py::test_improved_recipes_are_captured_and_train_exactly_like_the_eager_loop" 2>&1 | tail -1 | sed "s/^/  ema-weight-from-the-host, old emulation: /")
(cd $broken && git checkout -q -- .)
