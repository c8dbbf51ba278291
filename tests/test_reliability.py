"""Nothing lost: the run folder's lock, damaged metrics lines, runs that die early, temporary
files of killed writes (issue 12's data-loss cases, each reproduced)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from ganscope import cli, lock, runs, trainer, training
from ganscope.config import ModelConfig, RunConfig, TrainConfig
from ganscope.errors import GanscopeError


def _config(epochs=2, **train):
    return RunConfig(
        model=ModelConfig("mlp"), train=TrainConfig(epochs=epochs, device="cpu", **train)
    )


def _weights(run):
    state = run.load_checkpoint()
    return {f"{p}.{k}": v for p in ("generator", "discriminator") for k, v in state[p].items()}


def test_a_second_writer_is_refused_at_once_and_the_first_is_unharmed(
    tmp_path, small_split, capsys
):
    run = trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    before = run.metrics_path.read_bytes()
    with lock.writer_lock(run.path, ["ganscope", "train", "--out", str(run.path)]):
        started = time.monotonic()
        with pytest.raises(GanscopeError, match=r"being written by another process \(PID \d+"):
            trainer.resume(run.path, epochs=2, split=small_split, progress=False)
        assert time.monotonic() - started < 5  # refused at once, not after a wait
        assert run.metrics_path.read_bytes() == before
        code = cli.main(["train", "--resume", str(run.path), "--epochs", "2", "--no-progress"])
        assert code == 2 and "being written by another process" in capsys.readouterr().err
    resumed = trainer.resume(run.path, epochs=2, split=small_split, progress=False)
    assert [r["epoch"] for r in resumed.metrics("epoch")] == [1, 2]


def test_two_training_processes_on_one_folder(tmp_path, fashion_dir):
    """Two real processes: the second (a --resume) fails naming the first's PID, and the first
    finishes with each record once."""
    out = tmp_path / "run"
    # The CNN GAN (about 10 s for its 100 steps here): the first must still be training when
    # the second has started Python and torch, which an MLP run of 200 steps outran.
    argv = [sys.executable, "-m", "ganscope", "train", "--model", "cnn", "--epochs", "2"]
    argv += ["--limit", "3200"]
    argv += ["--data-dir", str(fashion_dir), "--out", str(out), "--no-progress"]
    first = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (out / runs.METRICS_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = subprocess.run(
        [sys.executable, "-m", "ganscope", "train", "--resume", str(out), "--epochs", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert second.returncode == 2, second.stderr
    assert f"PID {first.pid}" in second.stderr and "Traceback" not in second.stderr
    run = runs.load_run(out)
    steps = [r["step"] for r in run.metrics("step")]
    assert steps == list(range(1, 101)) and run.config.train.epochs == 2


def test_a_damaged_metrics_line_is_kept_aside_not_a_reason_to_drop_records(tmp_path, small_split):
    run = trainer.train(_config(epochs=2), tmp_path / "run", split=small_split, progress=False)
    lines = run.metrics_path.read_text().splitlines()
    lines[3] = '{"kind": "step", "epo'  # a damaged line in the middle
    run.metrics_path.write_text("\n".join(lines) + "\n")
    good = [json.loads(line) for i, line in enumerate(lines) if i != 3]
    trainer.resume(run.path, epochs=3, split=small_split, progress=False)
    records = runs.read_metrics(run.metrics_path)
    assert records[: len(good)] == good  # every later good record is still there
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2, 3]
    aside = run.path / runs.DAMAGED_METRICS_FILE
    assert aside.read_text() == '{"kind": "step", "epo\n'


def test_a_run_killed_before_its_first_checkpoint_resumes(
    tmp_path, small_split, monkeypatch, capsys
):
    full = trainer.train(_config(epochs=1), tmp_path / "full", split=small_split, progress=False)
    real_step, calls = training.train_step, {"n": 0}

    def dying_step(state, real, z):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_step(state, real, z)

    monkeypatch.setattr(training, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(_config(epochs=1), tmp_path / "cut", split=small_split, progress=False)
    monkeypatch.setattr(training, "train_step", real_step)
    assert not runs.load_run(tmp_path / "cut").has_checkpoint()
    # What the interrupted command told the user works: --resume.
    resumed = trainer.resume(tmp_path / "cut", split=small_split, progress=False)
    w_full, w_resumed = _weights(full), _weights(resumed)
    assert all(torch.equal(w_full[k], w_resumed[k]) for k in w_full)


def test_temporary_files_of_a_killed_write_are_cleared(tmp_path, small_split):
    run = trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    orphans = [
        run.path / "checkpoints" / ".last.pt.k3j2h1.tmp",
        run.path / "samples" / ".epoch_002.png.x8a7.tmp",
    ]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    trainer.resume(run.path, epochs=2, split=small_split, progress=False)
    assert not any(orphan.exists() for orphan in orphans)
    assert not list(run.path.rglob("*.tmp"))


def test_resume_may_point_at_moved_data(tmp_path, small_split, fashion_dir):
    config = RunConfig(
        data=__import__("ganscope").DataConfig(data_dir="/gone/away", limit=320),
        model=ModelConfig("mlp"),
        train=TrainConfig(epochs=1, device="cpu"),
    )
    run = trainer.train(config, tmp_path / "run", split=small_split, progress=False)
    code = cli.main(
        ["train", "--resume", str(run.path), "--epochs", "2", "--data-dir", str(fashion_dir),
         "--no-progress"]
    )  # fmt: skip
    assert code == 0
    assert runs.load_run(run.path).config.data.data_dir == str(fashion_dir.resolve())


def test_results_carry_the_epoch_of_the_weights_they_used(tmp_path, small_split, monkeypatch):
    """While a run trains, its latest epoch moves on between loading the generator and writing
    the result; the result must name the epoch whose weights it used, read from the same file."""
    from ganscope.analysis import analyze_run

    run = trainer.train(_config(epochs=2), tmp_path / "run", split=small_split, progress=False)
    monkeypatch.setattr(runs.Run, "latest_epoch", lambda self: 3)  # "training went on"
    record = analyze_run(run, dims=("3",), n=4, sefa=0, progress=False)
    assert record["epoch"] == 2
    assert runs.load_run(run.path).analysis_record()["epoch"] == 2


def test_a_resume_that_hits_a_full_disk_resumes_bit_exact_once_space_is_back(
    tmp_path, small_split, monkeypatch
):
    """A resume whose epoch checkpoint cannot be written (ENOSPC) stops with one clear line
    and leaves the folder ahead of its checkpoint: config.json names the failed command and
    metrics.jsonl holds the lost epoch's steps (a half-written last line included). The next
    resume, once there is space, truncates the log to the checkpoint and ends bit-exact with
    a run that never failed."""
    from ganscope import atomic

    whole = trainer.train(_config(epochs=2), tmp_path / "whole", split=small_split, progress=False)
    run = trainer.train(_config(epochs=1), tmp_path / "run", split=small_split, progress=False)
    real_save = atomic.torch_save

    def disk_full(obj, path):
        if "last.pt" in str(path) or "generator_epoch_002" in str(path):
            with open(run.metrics_path, "a") as log:  # the last write before the disk filled
                log.write('{"kind": "step", "epoch": 2, "st')
            raise GanscopeError(f"cannot write {path} (No space left on device)")
        return real_save(obj, path)

    monkeypatch.setattr(atomic, "torch_save", disk_full)
    with pytest.raises(GanscopeError, match="No space left on device"):
        trainer.resume(run.path, epochs=2, split=small_split, progress=False)
    assert runs.load_run(run.path).latest_epoch() == 1
    assert max(r["step"] for r in run.metrics("step")) == 10  # the lost epoch's steps

    monkeypatch.setattr(atomic, "torch_save", real_save)
    resumed = trainer.resume(run.path, epochs=2, split=small_split, progress=False)
    w_whole, w_resumed = _weights(whole), _weights(resumed)
    assert all(torch.equal(w_whole[k], w_resumed[k]) for k in w_whole)

    # each step once, no trace of the failed epoch
    assert resumed.metrics("step") == whole.metrics("step")
    assert [r["epoch"] for r in resumed.metrics("epoch")] == [1, 2]
    aside = run.path / runs.DAMAGED_METRICS_FILE
    assert aside.read_text().startswith('{"kind": "step", "epoch": 2, "st')
