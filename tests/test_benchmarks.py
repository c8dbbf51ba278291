"""The benchmark scripts' own bookkeeping (their runs are long; what they decide is not)."""

import argparse
import dataclasses
import importlib.util
import json
import statistics
from pathlib import Path

import pytest
import torch

from ganscope import presets as preset_table
from ganscope import runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def presets():
    """benchmarks/presets.py as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location("presets_bench", ROOT / "benchmarks/presets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_screen_is_a_study_of_run_folders_and_its_table_comes_from_it(
    tmp_path, presets, fashion_dir, monkeypatch, capsys
):
    """Two variants on one seed: a grid study of named points; each trial a run folder with
    its recipe and an n-sample evaluation; the same command again trains nothing; a changed
    recipe (another preset) is another study, not a row under the old name."""
    pytest.importorskip("optuna")
    argv = ["presets.py", "--model", "mlp", "--variants", "seed", "ema", "--seeds", "3",
            "--epochs", "1", "--limit", "640", "--n", "200", "--precision", "fp32",
            "--data-dir", str(fashion_dir), "--out", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    presets.main()
    rows = presets.read_rows(tmp_path)
    assert sorted(r["variant"] for r in rows) == ["ema", "seed"]
    for row in rows:
        run = runs.load_run(row["run"])
        assert run.config.train.seed == 3 and run.config.data.limit == 640
        assert run.config.train.ema == (0.999 if row["variant"] == "ema" else 0.0)
        assert row["n"] == 200 and row["fid"] == run.find_evaluation(n=200)["fid"]
    (study,) = (tmp_path / "studies").iterdir()
    trained = sorted(p.name for p in (study / "trials").iterdir())
    presets.main()  # joins its study: nothing trained again
    assert sorted(p.name for p in (study / "trials").iterdir()) == trained
    monkeypatch.setattr("sys.argv", [*argv[:-2], "--out", str(tmp_path), "--table"])
    capsys.readouterr()
    presets.main()
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| mlp")]
    assert len(table) == 3  # two variants, then ema against the seed preset
    assert "| ema | ema=0.999 |" in table[0] + table[1]
    monkeypatch.setitem(preset_table.PRESETS, "seed", {"mlp": {"lr": 1e-3}})
    args = argparse.Namespace(
        model="mlp", variants=["seed", "ema"], seeds=[3], epochs=1, limit=640, n=200,
        device="auto", precision="fp32", data_dir=str(fashion_dir),
    )  # fmt: skip
    assert presets.space_toml(args)[0] != study.name


def _row(variant, changes, seed, fid):
    return {
        "model": "cnn", "variant": variant, "changes": changes, "seed": seed, "epochs": 10,
        "limit": None, "fid": fid, "kid": 0.1, "precision": 0.6, "recall": 0.4,
        "coverage": 0.3, "rarest_share": 0.05, "seconds_per_epoch": 400.0, "device": "cpu",
        "epoch_seconds": [390.0, 395.0, 415.0],
    }  # fmt: skip


def test_the_table_keeps_a_row_per_recipe_and_the_latest_line_per_seed(tmp_path, presets):
    old, new = {"preset": "improved", "r1_gamma": 1.0}, {"preset": "improved", "r1_gamma": 3.0}
    lines = [
        _row("improved", old, 0, 10.0),
        _row("improved", old, 1, 12.0),
        _row("improved", new, 0, 8.0),
        _row("improved", new, 0, 7.0),  # evaluated again: replaces the line before
        # scored from the averaged runs' own weights: it trained nothing, so no seconds
        {**_row("improved-ema", {"r1_gamma": 1.0}, 0, 9.0), "trained_weights_of": "x"},
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in lines))
    table = presets.table(presets.read_rows(tmp_path))  # rows of screens before the studies
    rows = [line for line in table.splitlines() if line.startswith("| cnn")]
    assert len(rows) == 3
    assert "r1_gamma=1.0" in rows[0] and "| 11.00 ± 1.41 |" in rows[0] and "| 0,1 |" in rows[0]
    assert "r1_gamma=3.0" in rows[1] and "| 7.00 |" in rows[1] and "| 0 |" in rows[1]
    assert "| 400.0 | 395.0 |" in rows[1] and "G's own weights" not in rows[1]  # mean, median
    assert "| 395.0 |" in rows[0]  # the median of both seeds' epochs
    assert "G's own weights of the same runs with ema" in rows[2] and "| - | - |" in rows[2]


def test_each_recipe_is_set_against_the_seed_preset_on_one_device_and_its_seeds(tmp_path, presets):
    improved = {"preset": "improved", "r1_gamma": 1.0}
    lines = [
        _row("seed", {"preset": "seed"}, 0, 16.0),
        _row("seed", {"preset": "seed"}, 1, 14.0),
        _row("improved", improved, 0, 7.0),
        _row("improved", improved, 1, 8.0),
        _row("improved", improved, 2, 1.0),  # no seed-preset run from seed 2: left out
        {**_row("improved", improved, 0, 2.0), "device": "cuda"},  # no seed preset there
        {**_row("ema", {"ema": 0.999}, 0, 4.0), "rarest_share": 0.03},
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in lines))
    table = presets.against_seed(presets.read_rows(tmp_path))
    rows = [line for line in table.splitlines() if line.startswith("| cnn")]
    assert len(rows) == 2
    cells = [cell.strip() for cell in rows[0].split("|")[1:-1]]
    assert cells[1:6] == ["improved", "10", "cpu", "0,1", "7.50 / 15.00"]
    assert cells[6:8] == ["0.500x", "0.44, 0.57"]
    assert cells[-1] == "met (2 seeds; the targets ask 3)"
    assert rows[1].endswith("| not met: rarest class 3.00% < 5% (1 seed; the targets ask 3) |")


def test_the_mlp_targets_ask_for_recall_too(presets):
    assert presets._verdict("mlp", 0.6, 4.0, 0.02, 3) == "not met: recall 4.0x < 5x"
    assert presets._verdict("mlp", 0.7, 13.0, 0.025, 3) == "not met: FID 0.700x > 0.667x"
    assert presets._verdict("cnn", 0.5011, 2.0, 0.05, 3) == "not met: FID 0.501x > 0.500x"
    assert presets._verdict("mlp", 0.54, 13.0, 0.02, 3) == "met"


def _conditional_bench():
    spec = importlib.util.spec_from_file_location("cond_bench", ROOT / "benchmarks/conditional.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _screen_args(**changes):
    """benchmarks/conditional.py's arguments for a 10-epoch CPU run, its defaults but
    ``changes``."""
    defaults = {"epochs": 10, "device": "cpu", "data_dir": None, "class_weight": 1.0,
                "mode_seeking": 0.0, "ema": None, "ema_ramp": None, "loss": None,
                "r1_gamma": None, "lr": None, "lr_d": None, "spectral_norm": None}  # fmt: skip
    return argparse.Namespace(**{**defaults, **changes})


def test_the_conditional_table_is_computed_from_the_results():
    bench = _conditional_bench()

    def result(cond, seed, fid, agree, seconds):
        per_class = [agree] * 10
        return {
            "model": "mlp", "preset": "seed", "conditioning": cond, "seed": seed, "fid": fid,
            "label_agreement": agree if cond != "none" else None, "seconds_per_epoch": seconds,
            "label_agreement_worst_gap": None, "intra_fid": None, "cas": None,
            "label_agreement_per_class": per_class if cond != "none" else None,
            "classifier_accuracy_per_class": [0.9] * 10, "intra_fid_per_class": [5.0] * 10,
            "class_precision": agree, "class_precision_per_class": per_class,
            "class_recall": None, "class_recall_per_class": None,
            "cas_per_class": [agree - 0.1] * 10 if cond != "none" else None,
            "device": "cpu", "precision": "fp32", "threads": 1, "cpu": "x",
        }  # fmt: skip

    results = [
        result("none", 3, 30.0, None, 2.0),
        result("none", 4, 34.0, None, 2.0),
        result("projection", 3, 20.0, 0.6, 2.2),
        result("projection", 4, 22.0, 0.8, 2.6),
    ]
    text = bench.table(results)
    row = next(line for line in text.splitlines() if "| projection |" in line)
    assert "| 3,4 | 21.000 ± 1.414 | 0.700 ± 0.141 |" in row
    assert row.endswith("| 2.4 | 1.20 |")  # 2.4 s against the unconditional 2.0 s
    assert "| 3,4 | 21.000 ± 1.414 | 0.700 ± 0.141 | – | – | 0.700 ± 0.141 | – | – |" in row
    # the per-class CAS, mean ± std over the seeds (0.5 and 0.7); a line without it: "–"
    assert "| 0.700 | 0.900 | +0.200 | 5.00 | 0.700 ± 0.141 | – | 0.600 ± 0.141 |" in (
        bench.per_class(results, "mlp", "seed", "projection")
    )
    for line in results:
        del line["cas_per_class"]
    assert "| 0.700 | 0.900 | +0.200 | 5.00 | 0.700 ± 0.141 | – | – |" in bench.per_class(
        results, "mlp", "seed", "projection"
    )


def test_the_cas_table_sets_each_variant_s_classes_beside_the_classifier_on_real_images():
    """One row per variant with a per-class CAS (mean over its seeds), under the shipped
    classifier's own accuracy per class; lines without one are left out, and with none the
    table is empty."""
    bench = _conditional_bench()
    real = [0.9] * 6 + [0.78] + [0.95] * 3

    def line(cond, seed, cas, shirts):
        per_class = None if cas is None else [cas] * 6 + [shirts] + [cas] * 3
        return {
            "model": "cnn", "preset": "improved", "conditioning": cond, "seed": seed,
            "cas": cas, "cas_per_class": per_class, "cas_real": 0.93,
            "classifier_accuracy_per_class": real,
        }  # fmt: skip

    results = [
        line("dual", 6, 0.8, 0.3),
        line("dual", 7, 0.9, 0.5),
        line("projection", 3, None, None),  # evaluated without --cas
    ]
    rows = bench.cas_table(results).splitlines()
    assert rows[2].startswith("| – | – | real images (the shipped classifier) | – | 0.930 | 0.900")
    assert "| 0.780 |" in rows[2]
    assert (
        rows[3]
        == "| cnn | improved | dual | 6,7 | 0.850 | "
        + " | ".join(["0.850"] * 6 + ["0.400"] + ["0.850"] * 3)
        + " |"
    )
    assert len(rows) == 4  # no row for the variant without a CAS
    assert bench.cas_table(results[2:]) == ""


def test_a_variant_s_seconds_are_set_against_the_unconditional_runs_of_its_own_recipe():
    bench = _conditional_bench()

    def result(cond, changes, seconds):
        name = f"{cond}, {changes}" if changes else cond
        return {"model": "mlp", "preset": "improved", "conditioning": name, "changes": changes,
                "seed": 26, "seconds_per_epoch": seconds, "device": "cpu", "precision": "fp32",
                "threads": 1, "cpu": "x"}  # fmt: skip

    faster = "lr 0.0008, D 0.0008"
    results = [result("none", "", 2.0), result("none", faster, 4.0),
               result("dual", "", 3.0), result("dual", faster, 5.0)]  # fmt: skip
    rows = {line.split(" | ")[2]: line for line in bench.table(results).splitlines()[2:6]}
    assert rows["dual"].endswith("| 3.0 | 1.50 |")  # against the preset's own none, 2.0 s
    assert rows[f"dual, {faster}"].endswith("| 5.0 | 1.25 |")  # against none at its rates
    assert rows[f"none, {faster}"].endswith("| 4.0 | – |")  # not against itself
    old = {k: v for k, v in result("dual", faster, 5.0).items() if k != "changes"}
    assert bench.table([results[0], old]).splitlines()[2].endswith("| 5.0 | 2.50 |")


def test_the_conditional_runs_take_a_moving_average_of_their_own_and_say_so():
    bench = _conditional_bench()
    plain = _screen_args()
    wide = _screen_args(ema=0.9999, ema_ramp=2.0)
    base = bench.run_config("cnn", "improved", "projection", 0, plain)
    config = bench.run_config("cnn", "improved", "projection", 0, wide)
    assert (base.train.ema, base.train.ema_ramp) == (0.999, 10.0)  # the preset's, unchanged
    assert (config.train.ema, config.train.ema_ramp) == (0.9999, 2.0)
    assert dataclasses.replace(config.train, ema=0.999, ema_ramp=10.0) == base.train
    assert (bench.suffix(plain), bench.suffix(wide)) == ("", "-ema0.9999-r2")
    assert bench.recipe_change(base.train, "cnn") == ""
    name = bench.variant("projection", 1.0, 0.0, bench.recipe_change(config.train, "cnn"))
    assert name == "projection, EMA 0.9999, ramp 2"


def test_a_preset_s_moving_average_is_the_run_s_unless_a_flag_changes_it():
    """``--presets conditional`` trains the preset's average (ramp 4), named and filed as the
    preset's recipe; ``--ema-ramp`` beside it is a change of its own."""
    bench = _conditional_bench()
    config = bench.run_config("mlp", "conditional", "dual", 0, _screen_args()).train
    preset = preset_table.with_preset(type(config)(preset="conditional"), "mlp")
    assert (config.ema, config.ema_ramp) == (preset.ema, preset.ema_ramp) == (0.9999, 4.0)
    assert bench.recipe_change(config, "mlp") == "" and bench.suffix(_screen_args()) == ""
    other = bench.run_config("mlp", "conditional", "dual", 0, _screen_args(ema_ramp=10.0)).train
    assert other.ema_ramp == 10.0 and bench.suffix(_screen_args(ema_ramp=10.0)) == "-r10"
    assert bench.recipe_change(other, "mlp") == "EMA 0.9999, ramp 10"


def test_the_conditional_runs_take_a_loss_and_r1_weight_of_their_own_and_say_so():
    bench = _conditional_bench()
    plain = _screen_args()
    moved = _screen_args(loss="hinge", r1_gamma=1.0)
    base = bench.run_config("cnn", "improved", "projection", 0, plain)
    config = bench.run_config("cnn", "improved", "projection", 0, moved)
    assert (base.train.loss, base.train.r1_gamma) == ("bce", 3.0)  # the preset's, unchanged
    assert (config.train.loss, config.train.r1_gamma) == ("hinge", 1.0)
    assert dataclasses.replace(config.train, loss="bce", r1_gamma=3.0) == base.train
    assert (bench.suffix(plain), bench.suffix(moved)) == ("", "-hinge-r1g1")
    assert bench.recipe_change(base.train, "cnn") == ""
    name = bench.variant("projection", 1.0, 0.0, bench.recipe_change(config.train, "cnn"))
    assert name == "projection, hinge loss, R1 γ 1"
    # the MLP's preset has no R1: a weight given there is a change too
    mlp = bench.run_config("mlp", "improved", "dual", 0, moved)
    assert bench.recipe_change(mlp.train, "mlp") == "hinge loss, R1 γ 1"


def test_the_conditional_runs_take_learning_rates_of_their_own_and_say_so():
    bench = _conditional_bench()
    plain = _screen_args()
    slower = _screen_args(lr=3e-4, lr_d=6e-4)
    g_only = _screen_args(lr=1e-3)
    base = bench.run_config("cnn", "improved", "projection", 0, plain)
    config = bench.run_config("cnn", "improved", "projection", 0, slower)
    assert (base.train.lr, base.train.lr_d) == (6e-4, 1.2e-3)  # the preset's, unchanged
    assert (config.train.lr, config.train.lr_d) == (3e-4, 6e-4)
    assert dataclasses.replace(config.train, lr=6e-4, lr_d=1.2e-3) == base.train
    assert bench.suffix(slower) == "-lr0.0003-lrd0.0006"
    assert bench.suffix(g_only) == "-lr0.001"
    name = bench.variant("projection", 1.0, 0.0, bench.recipe_change(config.train, "cnn"))
    assert name == "projection, lr 0.0003, D 0.0006"
    only = bench.run_config("cnn", "improved", "projection", 0, g_only).train
    assert (only.lr, only.lr_d) == (1e-3, 1.2e-3)  # D keeps the preset's rate
    # the MLP's preset has no D rate of its own: D's rate is G's
    mlp = bench.run_config("mlp", "improved", "dual", 0, g_only)
    assert bench.recipe_change(mlp.train, "mlp") == "lr 0.001, D 0.001"


def test_the_conditional_runs_take_spectral_norm_on_or_off_and_say_so():
    bench = _conditional_bench()
    plain, on, off = (
        _screen_args(),
        _screen_args(spectral_norm=True),
        _screen_args(spectral_norm=False),
    )
    cnn = bench.run_config("cnn", "improved", "dual", 0, plain).train
    cnn_sn = bench.run_config("cnn", "improved", "dual", 0, on).train
    assert (cnn.spectral_norm, cnn_sn.spectral_norm) == (False, True)  # the CNN preset's: off
    assert dataclasses.replace(cnn_sn, spectral_norm=False) == cnn
    assert (bench.suffix(plain), bench.suffix(on), bench.suffix(off)) == ("", "-sn", "-nosn")
    assert bench.recipe_change(cnn, "cnn") == ""
    name = bench.variant("dual", 0.1, 0.0, bench.recipe_change(cnn_sn, "cnn"))
    assert name == "dual, class weight 0.1, spectral norm"
    # the MLP's improved preset has it: on is no change there, off is one
    assert (
        bench.recipe_change(bench.run_config("mlp", "improved", "dual", 0, on).train, "mlp") == ""
    )
    mlp_off = bench.run_config("mlp", "improved", "dual", 0, off).train
    assert not mlp_off.spectral_norm
    assert bench.recipe_change(mlp_off, "mlp") == "no spectral norm"


def test_a_longer_run_is_a_recipe_of_its_own_in_its_name_and_its_folder():
    """Runs past the issue's 10 epochs are named apart from the 10-epoch ones: the table's
    variant and the run folder (which would otherwise be reused for the other length)."""
    bench = _conditional_bench()
    longer = _screen_args(epochs=20, class_weight=0.3)
    config = bench.run_config("cnn", "improved", "dual", 0, longer)
    assert config.train.epochs == 20
    assert bench.recipe_change(config.train, "cnn") == "20 epochs"
    assert bench.suffix(longer) == "-w0.3-e20"
    plain = bench.run_config("cnn", "improved", "dual", 0, _screen_args(class_weight=0.3))
    assert bench.recipe_change(plain.train, "cnn") == "" and bench.suffix(_screen_args()) == ""
    both = _screen_args(epochs=20, lr=1e-3)
    changed = bench.run_config("mlp", "improved", "dual", 0, both).train
    assert bench.recipe_change(changed, "mlp") == "lr 0.001, D 0.001, 20 epochs"


def test_the_methods_keep_target_is_counted_from_the_rows():
    spec = importlib.util.spec_from_file_location("methods_bench", ROOT / "benchmarks/methods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def row(cls, method, keep_change, gain=0.3):
        return {"class": cls, "method": method, "length": 10.0, "keep_change": keep_change,
                "gain": gain, "keep_class": "K"}  # fmt: skip

    record = {"length": 10.0, "rows": [
        row("A", "boundary", 0.2), row("A", "conditional", 0.01),  # dragged up, then kept
        row("B", "boundary", 0.1), row("B", "conditional", -0.2),  # dragged, overshoots
        row("C", "boundary", -0.01), row("C", "conditional", 0.04, gain=-0.1),  # target falls
    ]}  # fmt: skip
    kept, scored, missed, drag = module.keep_target(record)
    assert (kept, scored) == (1, 3) and [m.split(" ")[0] for m in missed] == ["B", "C"]
    assert "for 2 classes (A, B); the conditional one keeps it for 1 of them" in drag


def test_grid_spread_reads_back_the_grid_training_wrote(tmp_path, capsys, monkeypatch):
    from ganscope import gallery, plots

    spec = importlib.util.spec_from_file_location("grid_spread", ROOT / "benchmarks/grid_spread.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    images = torch.randint(0, 256, (80, 28, 28), dtype=torch.uint8)
    path = plots.save_grid(images, tmp_path / "epoch_001.png", nrow=gallery.GRID_ROW, scale=2)
    assert torch.equal(module.read_grid(path), images)
    monkeypatch.setattr("sys.argv", ["grid_spread.py", str(path)])
    module.main()
    assert f"z spread {gallery.z_spread(images):.3f}" in capsys.readouterr().out


def test_the_speed_benchmark_counts_what_the_label_adds_to_a_step():
    spec = importlib.util.spec_from_file_location(
        "speed_bench", ROOT / "benchmarks/conditional_speed.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from ganscope.config import ModelConfig, RunConfig, TrainConfig
    from ganscope.state import init_state
    from ganscope.training import make_step

    cpu = torch.device("cpu")
    images = torch.rand(256, 1, 28, 28) * 2 - 1
    labels = torch.arange(256) % 10
    index = torch.arange(256)
    counts = {}
    for cond in ("none", "projection"):
        config = RunConfig(model=ModelConfig("mlp", conditioning=cond), train=TrainConfig())
        state = init_state(config, cpu)
        step = make_step(state, images, cpu, labels=labels if cond != "none" else None)
        bench.trial(step, state, index, labels, 2, 16, cpu)  # warm-up: Adam's state is made
        counts[cond] = [bench.count_ops(step, state, index, labels, 16, cpu, 3) for _ in "ab"]
    assert counts["none"][0] == counts["none"][1] > 100  # a step's calls, the same each time
    assert counts["projection"][0] == counts["projection"][1] > counts["none"][0]


def test_the_speed_benchmark_times_every_variant_by_the_runs_own_epoch_records(
    small_split, fashion_dir, capsys
):
    """``--epochs``: real runs, in turns; the seconds are the runs' own epoch records."""

    spec = importlib.util.spec_from_file_location(
        "speed_bench", ROOT / "benchmarks/conditional_speed.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    picked = ["none", "dual", "adc"]  # --conditionings dual adc (main puts none first)
    args = argparse.Namespace(
        preset="seed", device="cpu", epochs=2, repeats=1, data_dir=str(fashion_dir),
        conditionings=picked,
    )  # fmt: skip
    seconds = bench.time_epochs("mlp", small_split, args)
    assert list(seconds) == picked
    assert all(len(values) == 2 and min(values) > 0 for values in seconds.values())
    bench.print_epochs("mlp", seconds)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(picked) and out[0].endswith("1.00x unconditional")
    last = picked[-1]
    ratio = statistics.median(seconds[last]) / statistics.median(seconds["none"])
    assert out[-1].endswith(f"{ratio:.2f}x unconditional")


@pytest.mark.parametrize("script", ["gpu_steps.sh", "gpu_check.sh", "conditional_gpu.sh"])
def test_the_gpu_scripts_parse(script):
    import subprocess

    subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / script)], check=True)


def test_a_gpu_step_is_logged_timed_and_counted_and_skipped_past_the_budget(tmp_path):
    """``step`` of benchmarks/gpu_steps.sh, on commands any machine has."""
    import subprocess

    script = f"""
        out={tmp_path}; budget=$1; failed=0; : > "$out/summary.txt"
        source {ROOT / "benchmarks/gpu_steps.sh"}
        step fine 5 echo hello
        step broken 5 sh -c 'echo oops; exit 3'
        step slow 1 sleep 5
        budget=0
        step late 5 echo never
        echo "failed=$failed"
    """
    done = subprocess.run(
        ["bash", "-c", script, "bash", "60"], capture_output=True, text=True, check=True
    )
    summary = (tmp_path / "summary.txt").read_text().splitlines()
    assert summary[0].startswith("fine: ok")
    assert summary[1].startswith("broken: FAILED (3,")
    assert summary[2].startswith("slow: FAILED (timeout after 1 s")
    assert summary[3] == "late: SKIPPED (the 0-second budget is spent)"
    assert (tmp_path / "fine.log").read_text() == "hello\n"
    assert "oops" in done.stdout  # a failed step's log tail is shown
    assert done.stdout.strip().endswith("failed=3")


def test_cas_spread_scores_each_latent_and_recipe_seed_as_evaluation_does(
    tmp_path, small_split, fashion_dir, capsys
):
    import dataclasses

    from ganscope import evaluation, trainer
    from ganscope.classifier import ClassifierRecipe
    from ganscope.config import ModelConfig, RunConfig, TrainConfig
    from ganscope.data import load_split

    spec = importlib.util.spec_from_file_location("cas_spread", ROOT / "benchmarks/cas_spread.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    config = RunConfig(
        model=ModelConfig("mlp", conditioning="projection"),
        train=TrainConfig(epochs=1, device="cpu"),
    )
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    argv = [str(run.path), "--latent-seeds", "0", "3", "--recipe-seeds", "2"]
    argv += ["--per-class", "13", "--epochs", "1", "--data-dir", str(fashion_dir)]
    assert bench.main(argv) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(x["latent_seed"], x["recipe_seed"]) for x in lines] == [(0, 2), (3, 2)]

    test = load_split("fashion-mnist", "test", fashion_dir, download=False, progress=False)
    generator, _ = run.generator_at()
    recipe = dataclasses.replace(ClassifierRecipe(), seed=2, epochs=1)
    for line in lines:  # each line is evaluation's own score of that draw
        expected = evaluation.classification_accuracy_score(
            generator, test, per_class=13, seed=line["latent_seed"], recipe=recipe, progress=False
        )
        assert line["cas"] == round(expected["cas"], 4)


def test_ema_window_is_the_age_of_what_training_s_moving_average_holds():
    from ganscope.objective import MovingAverage

    spec = importlib.util.spec_from_file_location("ema_window", ROOT / "benchmarks/ema_window.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    steps, decay = 3000, 0.999
    G = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        G.weight.zero_()
    ema = MovingAverage(G, decay)
    for step in range(steps):  # G's weight after step s is s: the average is a mean step
        with torch.no_grad():
            G.weight.fill_(step)
        ema.update(G, ema.weight(step))
    averaged_step = float(ema.generator.weight)
    age = bench.mean_age(steps, bench.ramp(decay, 10))
    assert age == pytest.approx(steps - 1 - averaged_step, rel=1e-6)
    assert 250 < age < 400  # about s / 10 with the ramp's constant 10
    assert bench.mean_age(steps, bench.ramp(0.9999, 2)) == pytest.approx((steps - 1) / 2, rel=1e-3)


def test_ema_ramps_keeps_each_ramp_s_average_as_its_own_run_would(tmp_path, fashion_dir):
    """benchmarks/ema_ramps.py trains once and keeps an average per ramp: each equals, bit
    for bit, the saved generator of a run trained with that --ema-ramp (the CNN: standing
    statistics too), and its scores are evaluate_run's of that run."""
    from ganscope import trainer
    from ganscope.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from ganscope.evaluation import evaluate_run

    spec = importlib.util.spec_from_file_location("ramps", ROOT / "benchmarks/ema_ramps.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def config(ramp):
        return RunConfig(
            data=DataConfig(data_dir=str(fashion_dir), limit=192),
            model=ModelConfig("cnn", conditioning="projection"),
            train=TrainConfig(epochs=2, device="cpu", ema=0.9999, ema_ramp=ramp),
        )

    averages = bench.train(config(10.0), tmp_path / "once", (10.0, 2.0))
    for ramp in (10.0, 2.0):
        run = trainer.train(config(ramp), tmp_path / f"r{ramp:g}", progress=False)
        saved, _ = run.generator_at()
        got = averages[ramp].state_dict()
        assert saved.state_dict().keys() == got.keys()
        for key, tensor in saved.state_dict().items():
            assert torch.equal(got[key], tensor), (ramp, key)
    wide, default = (averages[r].state_dict() for r in (2.0, 10.0))
    assert any(not torch.equal(wide[k], default[k]) for k in wide)  # two averages, not one
    record = evaluate_run(run, n=200, data_dir=str(fashion_dir), progress=False)
    scores = bench.scorer(config(2.0), n=200, cas=False)(averages[2.0])
    assert scores == {k: record[k] for k in bench.KEYS}


def test_ema_ramps_table_prints_a_row_per_result_line_in_order(tmp_path, capsys):
    """``--table`` reads OUT/results.jsonl: a row per ramp, in the file's order, the values
    rounded to 3 digits, and a CAS column only when some line has one; no file, one line."""
    spec = importlib.util.spec_from_file_location("ramps", ROOT / "benchmarks/ema_ramps.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    base = {"model": "mlp", "conditioning": "dual", "class_weight": 2.0, "seed": 0,
            "ema": 0.9999, "n": 10000, "threads": 2}  # fmt: skip
    lines = [
        {**base, "ema_ramp": ramp, **{k: 0.1 * i + ramp / 100 for i, k in enumerate(bench.KEYS)}}
        for ramp in (10.0, 4.0)
    ]
    runs.append_metrics(tmp_path / "results.jsonl", lines)
    assert bench.main(["--out", str(tmp_path), "--table"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "CAS" not in out[0] and out[0].count("|") == 6 + len(bench.KEYS) + 1
    assert out[0].startswith("| network | conditioning | class weight | seed | EMA | ramp | FID")
    assert (
        out[2]
        == "| mlp | dual | 2 | 0 | 0.9999 | 10 | 0.100 | 0.200 | 0.300 | 0.400 | 0.500 | 0.600 |"
    )
    assert out[3].startswith("| mlp | dual | 2 | 0 | 0.9999 | 4 | 0.040 | 0.140 |")
    assert out[-1].startswith("CPU, torch threads [2], 10,000 samples")
    runs.append_metrics(tmp_path / "results.jsonl", [{**lines[0], "cas": 0.7891}])
    table = bench.table(bench.read_results(tmp_path)).splitlines()
    assert table[0].endswith("| CAS ↑ |") and table[2].endswith("| – |")
    assert table[4].endswith("| 0.789 |")
    with pytest.raises(SystemExit, match="does not exist"):
        bench.main(["--out", str(tmp_path / "none"), "--table"])
