"""Bad input to every command: exit status 2, one line naming the problem, no traceback, and
nothing in the run folder changed (issue 12's probe, as a parametrised suite).

Each case is an argument list; ``{run}`` is a trained one-epoch MLP run, ``{file}`` a plain
file, ``{fashion}`` the Fashion-MNIST folder, ``{tmp}`` a fresh folder. The damaged-file cases
damage a copy of the run first, then check that the command leaves the damage as it was.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from ganscope import cli, runs, trainer
from ganscope.config import RunConfig, TrainConfig

TRAIN = ["train", "--data-dir", "{fashion}", "--limit", "64", "--no-progress"]
TRAIN_OUT = [*TRAIN, "--out", "{tmp}/new"]

CASES = {
    # train: every flag's range, names from the registries, places that cannot be written
    "model": ([*TRAIN_OUT, "--model", "gpt"], "unknown model 'gpt'"),
    "epochs-negative": ([*TRAIN_OUT, "--epochs", "-1"], "--epochs must be at least 1"),
    "epochs-zero": ([*TRAIN_OUT, "--epochs", "0"], "--epochs must be at least 1"),
    "lr-zero": ([*TRAIN_OUT, "--lr", "0"], "--lr must be a positive finite number"),
    "lr-nan": ([*TRAIN_OUT, "--lr", "nan"], "--lr must be a positive finite number"),
    "beta1": ([*TRAIN_OUT, "--beta1", "1"], "--beta1 must be in [0, 1)"),
    "beta2": ([*TRAIN_OUT, "--beta2=-0.1"], "--beta2 must be in [0, 1)"),
    "batch-zero": ([*TRAIN_OUT, "--batch-size", "0"], "--batch-size must be at least 1"),
    "batch-too-big": ([*TRAIN_OUT, "--batch-size", "100"], "fewer than one batch of 100"),
    "dataset": ([*TRAIN_OUT, "--dataset", "cifar10"], "unknown dataset 'cifar10'"),
    "device-unknown": ([*TRAIN_OUT, "--device", "tpu"], "unknown device 'tpu'"),
    "device-index": ([*TRAIN_OUT, "--device", "cpu:x"], "unknown device"),
    "checkpoint-minutes": ([*TRAIN_OUT, "--checkpoint-minutes=-1"], "--checkpoint-minutes"),
    "eval-every": ([*TRAIN_OUT, "--eval-every=-1"], "--eval-every must be 0"),
    "eval-samples": ([*TRAIN_OUT, "--eval-samples", "5"], "--eval-samples must be at least 10"),
    "precision": ([*TRAIN_OUT, "--precision", "fp16"], "--precision must be"),
    "seed-negative": ([*TRAIN_OUT, "--seed=-1"], "--seed must be in 0..2**63-1"),
    "seed-huge": ([*TRAIN_OUT, "--seed", str(2**64)], "--seed must be in 0..2**63-1"),
    "limit": ([*TRAIN_OUT, "--limit", "0"], "--limit must be at least 1"),
    "data-dir-file": (["train", "--data-dir", "{file}", "--out", "{tmp}/new"], "is a file"),
    "wrong-dataset-files": ([*TRAIN_OUT, "--dataset", "mnist"], "is fashion-mnist's file"),
    "out-is-a-file": ([*TRAIN, "--out", "{file}"], "is a file, not a"),
    "out-under-a-file": ([*TRAIN, "--out", "{file}/run"], "cannot"),
    "out-in-proc": ([*TRAIN, "--out", "/proc/ganscope-run"], "cannot"),
    "out-holds-a-run": ([*TRAIN, "--out", "{run}"], "already holds a run"),
    "resume-missing": (["train", "--resume", "{tmp}/nothing"], "does not exist"),
    "resume-file": (["train", "--resume", "{file}"], "is a file, not a run folder"),
    "resume-not-a-run": (["train", "--resume", "{tmp}"], "not a ganscope run folder"),
    "resume-model": (["train", "--resume", "{run}", "--model", "cnn"], "--model cannot change"),
    "resume-finished": (["train", "--resume", "{run}", "--no-progress"], "already finished 1"),
    "resume-epochs": (["train", "--resume", "{run}", "--epochs", "0"], "--epochs must be"),
    "resume-out": (["train", "--resume", "{run}", "--out", "{tmp}/x"], "--out cannot change"),
    "preset": ([*TRAIN_OUT, "--preset", "best"], "unknown preset 'best'"),
    "loss": ([*TRAIN_OUT, "--loss", "wgan"], "--loss must be bce or hinge"),
    "ema": ([*TRAIN_OUT, "--ema", "1"], "--ema must be in [0, 1)"),
    "ema-ramp": ([*TRAIN_OUT, "--ema", "0.99", "--ema-ramp", "0.5"], "--ema-ramp must be 1 or"),
    "ema-ramp-alone": ([*TRAIN_OUT, "--ema-ramp", "3"], "--ema-ramp shapes --ema's average"),
    "mode-seeking": ([*TRAIN_OUT, "--mode-seeking=-1"], "--mode-seeking must be 0 or more"),
    "r1-every": ([*TRAIN_OUT, "--r1-every", "0"], "--r1-every must be at least 1"),
    "d-dropout": ([*TRAIN_OUT, "--d-dropout", "1"], "--d-dropout must be in [0, 1)"),
    "per-rank-batch-on-resume": (
        ["train", "--resume", "{run}", "--epochs", "2", "--per-rank-batch"],
        "--per-rank-batch cannot change",
    ),
    # export
    "import-missing": (["import", "{tmp}/nothing.pt", "--out", "{tmp}/new"], "does not exist"),
    "import-not-a-model": (["import", "{file}", "--out", "{tmp}/new"], "not a model ganscope"),
    "import-z-dim": (["import", "{file}", "--z-dim", "0"], "--z-dim must be in 1..4096"),
    "import-format": (["import", "{file}", "--format", "pkl"], "--format must be one of auto"),
    "import-into-a-run": (["import", "{file}", "--out", "{run}"], "already holds a run"),
    "sweep-missing-space": (["sweep", "{tmp}/space.toml", "--out", "{tmp}/new"], "does not exist"),
    "sweep-no-out": (["sweep", "{file}"], "give --out SWEEP_DIR"),
    "sweep-workers": (["sweep", "{file}", "--out", "{tmp}/new", "--workers", "0"], "--workers"),
    "sweep-not-toml": (["sweep", "{file}", "--out", "{tmp}/new"], "is not TOML"),
    "sweep-report-no-study": (["sweep", "--report", "{tmp}"], "holds no study"),
    "export-format": (["export", "{run}", "--format", "pdf"], "--format must be one of onnx"),
    "export-epoch": (["export", "{run}", "--epoch", "7"], "no generator for epoch 7"),
    "export-missing-run": (["export", "{tmp}/nothing"], "does not exist"),
    "export-out-folder": (["export", "{run}", "--out", "{tmp}"], "is a folder, not a file"),
    "export-over-checkpoint": (
        ["export", "{run}", "--out", "{run}/checkpoints/last.pt"],
        "inside",
    ),
    # sample
    "sample-n": (["sample", "{run}", "--n", "0"], "--n must be at least 1"),
    "sample-n-huge": (["sample", "{run}", "--n", str(10**12)], "GiB of memory"),
    "sample-nrow": (["sample", "{run}", "--nrow", "0"], "--nrow must be at least 1"),
    "sample-seed": (["sample", "{run}", "--seed=-5"], "--seed must be in"),
    "sample-epoch-zero": (["sample", "{run}", "--epoch", "0"], "--epoch must be at least 1"),
    "sample-epoch-missing": (["sample", "{run}", "--epoch", "9"], "no generator for epoch 9"),
    "sample-device": (["sample", "{run}", "--device", "foo"], "unknown device 'foo'"),
    "sample-device-cuda": (["sample", "{run}", "--device", "cuda:3"], "--device cuda:3"),
    "sample-over-checkpoint": (
        ["sample", "{run}", "--out", "{run}/checkpoints/last.pt"],
        "training state",
    ),
    "sample-over-config": (["sample", "{run}", "--out", "{run}/config.json"], "training state"),
    "sample-over-a-file": (["sample", "{run}", "--out", "{file}"], "pass --overwrite"),
    "sample-missing-run": (["sample", "{tmp}/nothing"], "run folder"),
    "sample-run-is-a-file": (["sample", "{file}"], "is a file, not a run folder"),
    "sample-not-a-run": (["sample", "{tmp}"], "not a ganscope run folder"),
    # traverse
    "traverse-dim-high": (["traverse", "{run}", "--dims", "100"], "out of range"),
    "traverse-dim-negative": (["traverse", "{run}", "--dims", "-1"], "out of range"),
    "traverse-delta-zero": (["traverse", "{run}", "--delta", "0"], "--delta must be positive"),
    "traverse-delta-inf": (["traverse", "{run}", "--delta", "inf"], "must be finite"),
    "traverse-delta-huge": (["traverse", "{run}", "--delta", "1e9"], "at most 1000"),
    "traverse-steps": (["traverse", "{run}", "--steps", "1"], "--steps must be at least 2"),
    "traverse-n": (["traverse", "{run}", "--n", "0"], "--n must be at least 1"),
    "traverse-huge": (["traverse", "{run}", "--steps", str(10**9)], "GiB of memory"),
    "traverse-out-file": (["traverse", "{run}", "--out", "{file}"], "is a file, not a folder"),
    # interpolate
    "interpolate-one-seed": (["interpolate", "{run}", "--seeds", "1"], "at least two seeds"),
    "interpolate-steps": (["interpolate", "{run}", "--steps", "1"], "--steps must be at least 2"),
    "interpolate-method": (["interpolate", "{run}", "--method", "cubic"], "--method must be"),
    "interpolate-seed": (["interpolate", "{run}", "--seeds", "0", "-1"], "--seeds must be in"),
    "interpolate-huge": (["interpolate", "{run}", "--steps", str(10**10)], "GiB of memory"),
    # animate
    "animate-frame-zero": (["animate", "{run}", "--frame-ms", "0"], "--frame-ms must be in"),
    "animate-frame-huge": (["animate", "{run}", "--frame-ms", str(10**9)], "--frame-ms must be in"),
    # evaluate
    "evaluate-n": (["evaluate", "{run}", "--n", "1"], "--n must be at least 2"),
    "evaluate-n-huge": (["evaluate", "{run}", "--n", str(10**12)], "GiB of memory"),
    "evaluate-classifier": (["evaluate", "{run}", "--classifier", "{tmp}/x.pt"], "not found"),
    "evaluate-data-dir": (["evaluate", "{run}", "--data-dir", "{file}"], "is a file"),
    "evaluate-device": (["evaluate", "{run}", "--device", "mps"], "--device mps"),
    # analyze
    "analyze-dims": (["analyze", "{run}", "--dims", "100", "--no-progress"], "out of range"),
    "analyze-dims-text": (["analyze", "{run}", "--dims", "twenty"], "--dims takes 'all'"),
    "analyze-lang": (["analyze", "{run}", "--lang", "fr"], "--lang must be one of en, zh"),
    "analyze-delta": (["analyze", "{run}", "--delta=-1"], "must be positive"),
    "analyze-n": (["analyze", "{run}", "--n", "1"], "--n must be at least 2"),
    "analyze-top-k": (["analyze", "{run}", "--top-k", "0"], "--top-k must be at least 1"),
    "analyze-sefa": (["analyze", "{run}", "--sefa=-1"], "--sefa must be at least 0"),
    "analyze-device": (["analyze", "{run}", "--device", "cuda"], "--device cuda"),
    # reproduce and report
    "reproduce-lang": (["reproduce", "--lang", "fr", "--out", "{tmp}/r"], "--lang must be"),
    "reproduce-seeds": (["reproduce", "--seeds", "1", "1", "--out", "{tmp}/r"], "repeats"),
    "reproduce-seed": (["reproduce", "--seeds=-1", "--out", "{tmp}/r"], "--seeds must be in"),
    "reproduce-preset": (["reproduce", "--presets", "best", "--out", "{tmp}/r"], "'best'"),
    "reproduce-presets-repeat": (
        ["reproduce", "--presets", "seed", "seed", "--out", "{tmp}/r"],
        "--presets has repeats",
    ),
    "reproduce-model": (["reproduce", "--models", "gpt", "--out", "{tmp}/r"], "'gpt'"),
    "report-missing": (["report", "{tmp}/nothing"], "does not exist"),
    "report-lang": (["report", "{run}", "--lang", "xx"], "--lang must be"),
    "report-not-a-run": (["report", "{tmp}"], "not a ganscope run folder"),
    # serve
    "serve-missing": (["serve", "{tmp}/nothing"], "does not exist"),
    "serve-port": (["serve", "{run}", "--port", "0"], "--port must be in 1..65535"),
    "serve-device": (["serve", "{run}", "--device", "tpu"], "unknown device 'tpu'"),
    # bench and classifier
    "bench-batch": (["bench", "--batch-size", "0"], "--batch-size must be at least 1"),
    "bench-model": (["bench", "--models", "gpt"], "--models must be one of"),
    "bench-steps": (["bench", "--steps", "0"], "--steps must be at least 1"),
    "bench-repeats": (["bench", "--repeats", "0"], "--repeats must be at least 1"),
    "bench-precision": (["bench", "--precision", "fp16"], "--precision must be one of"),
    "classifier-epochs": (
        ["classifier", "train", "--out", "{tmp}/c.pt", "--epochs", "0"],
        "--epochs",
    ),
    "classifier-seed": (["classifier", "train", "--out", "{tmp}/c.pt", "--seed=-1"], "--seed"),
}


def _damage_config_binary(run: Path) -> None:
    (run / "config.json").write_bytes(b"\x80\x81\xfe binary")


def _edit_config(old: str, new: str):
    def damage(run: Path) -> None:
        path = run / "config.json"
        path.write_text(path.read_text().replace(old, new))

    return damage


def _damage_config_list(run: Path) -> None:
    (run / "config.json").write_text("[1, 2, 3]")


def _damage_checkpoint_truncated(run: Path) -> None:
    path = run / "checkpoints" / "last.pt"
    path.write_bytes(path.read_bytes()[:1000])


def _damage_checkpoint_keys(run: Path) -> None:
    torch.save({"format_version": 1, "epoch": 1}, run / "checkpoints" / "last.pt")


def _damage_checkpoint_other_model(run: Path) -> None:
    from ganscope.models import build_generator

    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["generator"] = build_generator("cnn").state_dict()
    torch.save(state, run / "checkpoints" / "last.pt")


def _damage_checkpoint_not_a_dict(run: Path) -> None:
    torch.save(torch.zeros(3), run / "checkpoints" / "last.pt")


def _damage_sample_png(run: Path) -> None:
    (run / "samples" / "epoch_001.png").write_bytes(b"\x89PNG broken")


def _remove_snapshots(run: Path) -> None:
    for snapshot in (run / "checkpoints").glob("generator_epoch_*.pt"):
        snapshot.unlink()


def _damage_classifier_record(run: Path) -> None:
    from ganscope.classifier import default_weights_path

    shutil.copy(default_weights_path(), run.parent / "c.pt")
    (run.parent / "c.json").write_text("[]")


DAMAGED = {
    "config-binary": (_damage_config_binary, ["sample", "{run}"], "config.json is unreadable"),
    "config-types": (
        _edit_config('"epochs": 1', '"epochs": "one"'),
        ["sample", "{run}"],
        "train.epochs has the wrong type",
    ),
    "config-list": (_damage_config_list, ["sample", "{run}"], "is not a ganscope run config"),
    "config-unknown": (
        _edit_config('"epochs": 1', '"epochs": 1, "warp": 9'),
        ["sample", "{run}"],
        "unknown train settings",
    ),
    "checkpoint-cut": (_damage_checkpoint_truncated, ["sample", "{run}"], "is unreadable"),
    "checkpoint-keys": (_damage_checkpoint_keys, ["sample", "{run}"], "lacks config, generator"),
    "checkpoint-model": (_damage_checkpoint_other_model, ["sample", "{run}"], "another network"),
    "checkpoint-tensor": (_damage_checkpoint_not_a_dict, ["sample", "{run}"], "format version"),
    "checkpoint-resume": (
        _damage_checkpoint_other_model,
        ["train", "--resume", "{run}", "--epochs", "2", "--data-dir", "{fashion}"],
        "does not fit this run's networks",
    ),
    "sample-png": (_damage_sample_png, ["animate", "{run}"], "is damaged"),
    "no-snapshots": (
        _remove_snapshots,
        ["analyze", "{run}", "--per-checkpoint", "--dims", "3"],
        "has no per-epoch generators",
    ),
    "classifier-record": (
        _damage_classifier_record,
        ["evaluate", "{run}", "--classifier", "{run}/../c.pt"],
        "is not a ganscope classifier record",
    ),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_split):
    path = tmp_path_factory.mktemp("bad-input") / "run"
    config = RunConfig(train=TrainConfig(epochs=1, device="cpu"))
    return trainer.train(config, path, split=small_split, progress=False).path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file's sha256, but the lock's bookkeeping (which a refused writer may touch)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (runs.LOCK_FILE, runs.WRITER_FILE)
    }


def _expect_refusal(capsys, argv: list[str], values: dict[str, str], message: str) -> None:
    argv = [part.format(**values) for part in argv]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    assert "Traceback" not in err and "weights_only=False" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganscope: error: "), err
    assert message in lines[0], lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, trained, tmp_path, fashion_dir, capsys):
    argv, message = CASES[case]
    (tmp_path / "a-file").write_text("not a folder")
    before = snapshot(trained)
    values = {"run": str(trained), "file": str(tmp_path / "a-file"), "tmp": str(tmp_path)}
    _expect_refusal(capsys, argv, {**values, "fashion": str(fashion_dir)}, message)
    assert snapshot(trained) == before
    assert not (tmp_path / "new").exists()  # a refused train makes no folder


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_run_folder(case, trained, tmp_path, fashion_dir, capsys):
    damage, argv, message = DAMAGED[case]
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    damage(run)
    before = snapshot(run)
    values = {"run": str(run), "tmp": str(tmp_path), "fashion": str(fashion_dir)}
    _expect_refusal(capsys, argv, values, message)
    assert snapshot(run) == before


def test_the_suite_covers_every_command_and_sixty_inputs():
    commands = {argv[0] for argv, _ in CASES.values()}
    assert commands >= set(cli.COMMANDS) | {"train", "classifier"}
    assert len(CASES) + len(DAMAGED) >= 60
