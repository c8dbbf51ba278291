import json
import subprocess
import sys

import pytest

from ganscope import cli, runs


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
        "--cuda-graph",
        "off",
        "--no-progress",
    )
    assert code == 0, stderr
    assert "done:" in stdout
    run = runs.load_run(out)
    assert run.config.data.limit == 640 and run.config.train.seed == 3
    assert run.config.train.cuda_graph is False
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
        "on",
        "--no-progress",
    )
    assert code == 0, stderr
    run = runs.load_run(out)
    assert run.config.train.cuda_graph is True  # a mechanic, so a resumed run may switch it
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
