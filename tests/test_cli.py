import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from ganscope import cli, runs, trainer


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_end_to_end_then_resume(tmp_path, fashion_dir, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = _run(
        capsys,
        "train",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--limit",
        "640",
        "--seed",
        "3",
        "--data-dir",
        str(fashion_dir),
        "--out",
        str(out),
        "--no-progress",
    )
    assert code == 0, stderr
    assert "done:" in stdout
    run = runs.load_run(out)
    assert run.config.data.limit == 640 and run.config.train.seed == 3
    assert run.config.train.cuda_graph is True  # on by default (only CUDA captures)
    assert run.config.data.data_dir == str(fashion_dir.resolve())
    assert run.meta["commands"][0][:3] == ["ganscope", "train", "--model"]
    assert [r["step"] for r in run.metrics("step")][-1] == 10

    code, _, stderr = _run(
        capsys,
        "train",
        "--resume",
        str(out),
        "--epochs",
        "2",
        "--cuda-graph",
        "off",
        "--no-progress",
    )
    assert code == 0, stderr
    run = runs.load_run(out)
    assert run.config.train.cuda_graph is False  # a mechanic, so a resumed run may switch it
    assert [r["epoch"] for r in run.metrics("epoch")] == [1, 2]
    assert len(run.meta["commands"]) == 2
    assert json.loads((out / "config.json").read_text())["config"]["train"]["epochs"] == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "gpt"], "unknown model 'gpt'"),
        (["--epochs", "-1"], "--epochs must be at least 1"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--lr", "0"], "--lr must be a positive"),
        (["--lr=-1e-3"], "--lr must be a positive"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--dataset", "cifar10"], "unknown dataset"),
        (["--device", "tpu"], "unknown device"),
        (["--checkpoint-minutes=-1"], "--checkpoint-minutes must be 0"),
        (["--resume", "/definitely/not/here"], "run folder /definitely/not/here does not exist"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, fashion_dir, capsys, argv, message):
    code, _, stderr = (
        _run(
            capsys, "train", "--data-dir", str(fashion_dir), "--limit", "64", "--no-progress", *argv
        )
        if "--resume" not in argv
        else _run(capsys, "train", *argv)
    )
    assert code == 2
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("ganscope: error: ") and message in lines[-1]
    assert "Traceback" not in stderr


def test_resume_refuses_changed_settings(tmp_path, capsys):
    code, _, stderr = _run(capsys, "train", "--resume", str(tmp_path), "--model", "cnn")
    assert code == 2 and "--model cannot change" in stderr


def test_corrupt_data_file_is_status_2(tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")
    code, _, stderr = _run(
        capsys,
        "train",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
    )
    assert code == 2 and "train-images-idx3-ubyte.gz" in stderr


def test_module_entry_point_and_help():
    result = subprocess.run(
        [sys.executable, "-m", "ganscope", "train", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    for flag in ("--model", "--epochs", "--resume", "--data-dir", "--seed", "--device"):
        assert flag in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "ganscope", "train", "--epochs", "-3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "ganscope: error: --epochs must be at least 1, got -3"


def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_weights(tmp_path, fashion_dir):
    import signal
    import time

    import torch

    argv = [sys.executable, "-m", "ganscope", "train", "--model", "mlp", "--epochs", "4"]
    argv += ["--limit", "6400", "--checkpoint-minutes", "1e-9", "--no-progress"]
    argv += ["--data-dir", str(fashion_dir)]
    subprocess.run([*argv, "--out", str(tmp_path / "whole")], check=True, capture_output=True)

    cut = tmp_path / "cut"
    process = subprocess.Popen([*argv, "--out", str(cut)], stderr=subprocess.DEVNULL)
    partial = cut / "checkpoints" / "partial.pt"
    deadline = time.monotonic() + 120
    while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # no clean-up of any kind
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"

    resumed = subprocess.run(
        [sys.executable, "-m", "ganscope", "train", "--resume", str(cut), "--no-progress"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    whole = runs.load_run(tmp_path / "whole").load_checkpoint()
    again = runs.load_run(cut).load_checkpoint()
    assert again["step"] == whole["step"] == 400
    for player in ("generator", "discriminator"):
        for name, tensor in whole[player].items():
            assert torch.equal(again[player][name], tensor), f"{player}.{name}"


def _commands():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_flag_default_is_the_options_default(name):
    """No flag carries a default of its own: parsed with nothing given, the options object
    is exactly the dataclass's defaults, and every shown default is the dataclass's."""
    parser, commands = _commands()
    _, cls, positional, *_ = cli.COMMANDS[name]
    argv = [name] + (["RUN"] if positional else [])
    args = parser.parse_args(argv)
    assert cli.options_from(args, cls) == cls()
    help_text = " ".join(commands[name].format_help().split())
    for field in dataclasses.fields(cls):
        # (``0 in (None, False)`` is True: a bool default is told apart by its type)
        shown = not (field.default is None or isinstance(field.default, bool))
        if field.metadata.get("cli", True) and shown:
            assert f"(default: {cli._shown(field.default)})" in help_text, field.name
    assert ("--json" in help_text) == (name != "serve")  # a server prints no result


def test_interrupted_evaluate_does_not_talk_about_training(
    tmp_path, small_split, capsys, monkeypatch
):
    from ganscope.config import RunConfig, TrainConfig

    run = trainer.train(
        RunConfig(train=TrainConfig(epochs=1, device="cpu")), tmp_path / "run",
        split=small_split, progress=False,
    )  # fmt: skip

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "evaluate_run", interrupted)  # the function the command calls
    code, _, stderr = _run(capsys, "evaluate", str(run.path))
    assert code == cli.EXIT_INTERRUPTED
    assert "interrupted" in stderr and "training" not in stderr and "--resume" not in stderr


def test_progress_written_to_a_file_is_lines_not_bars(tmp_path, fashion_dir):
    log = tmp_path / "log.txt"
    with log.open("w") as stream:
        result = subprocess.run(
            [sys.executable, "-m", "ganscope", "train", "--epochs", "2", "--limit", "640"]
            + ["--data-dir", str(fashion_dir), "--out", str(tmp_path / "run")],
            stdout=stream,
            stderr=subprocess.STDOUT,
            check=False,
        )
    text = log.read_text()
    assert result.returncode == 0, text
    assert "\r" not in text and "\x1b[" not in text  # no bar redraws in a file
    assert [line.split()[1] for line in text.splitlines() if line.startswith("epoch ")] == [
        "1/2",
        "2/2",
    ]
