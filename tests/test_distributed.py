"""torchrun training (issue 14): 2 CPU ranks over gloo compute the 1-process training.

Each test launches ``torchrun --standalone --nproc_per_node 2 -m ganscope train`` for real
(one thread per rank, as torchrun sets it), on a small ``--limit`` of Fashion-MNIST, and
compares with the same run in this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from ganscope import distributed, runs, trainer, training
from ganscope.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ganscope.data import load_split, to_model_range
from ganscope.state import init_state

pytestmark = pytest.mark.slow
STATS = training.STEP_STATS


def torchrun(*args, nproc=2, script=None, timeout=240):
    """``torchrun --standalone`` on ``ganscope train ARGS`` (or a script); returns the result."""
    target = [script] if script else ["-m", "ganscope", "train"]
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    argv += [f"--nproc_per_node={nproc}", *target, *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def one_process(tmp_path, fashion_dir, name, model, limit, epochs=1, conditioning="none", **train):
    config = RunConfig(
        DataConfig(data_dir=str(fashion_dir), limit=limit),
        ModelConfig(model, conditioning=conditioning),
        TrainConfig(epochs=epochs, device="cpu", precision="fp32", **train),
    )
    split = load_split("fashion-mnist", "train", fashion_dir, limit=limit, progress=False)
    return trainer.train(config, tmp_path / name, split=split, progress=False)


def two_ranks(tmp_path, fashion_dir, name, model, limit, *extra):
    out = tmp_path / name
    result = torchrun(
        "--model", model, "--limit", limit, "--epochs", 1, "--precision", "fp32",
        "--data-dir", fashion_dir, "--out", out, "--no-progress", "--device", "cpu", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return runs.load_run(out), result


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def steps(run):
    return [[r[key] for key in STATS] for r in run.metrics("step")]


@pytest.mark.parametrize("conditioning", ["none", "dual"])  # dual: D returns two tensors
def test_two_ranks_train_the_mlp_of_one_process_and_write_the_folder_once(
    tmp_path, fashion_dir, conditioning
):
    reference = one_process(tmp_path, fashion_dir, "one", "mlp", 1280, conditioning=conditioning)
    run, result = two_ranks(  # 20 steps of 64
        tmp_path, fashion_dir, "two", "mlp", 1280, "--conditional", conditioning
    )
    assert run.config.model.conditioning == conditioning
    expected, got = reference.load_checkpoint(), run.load_checkpoint()
    for net in ("generator", "discriminator"):
        assert largest_difference(expected[net], got[net]) <= 1e-5, net
    # Written once, by rank 0: every step's record once, one epoch record, one command line.
    assert [r["step"] for r in run.metrics("step")] == list(range(1, 21))
    (epoch,) = run.metrics("epoch")
    assert epoch["processes"] == 2 and epoch["step"] == 20
    assert len(json.loads(run.config_path.read_text())["commands"]) == 1
    for path in (run.sample_grid_path(1), run.snapshot_path(1), run.losses_figure):
        assert path.is_file(), path
    assert result.stdout.count("done:") == 1  # rank 0 reports for both
    assert (
        max(abs(a - b) for x, y in zip(steps(reference), steps(run)) for a, b in zip(x, y)) < 1e-5
    )


def _first_step_gradients(run) -> dict[str, dict[int, torch.Tensor]]:
    """Step 1's gradients from a 1-step run's checkpoint: with beta1 = 0.5, Adam's first
    moment after one step is exactly half of them."""
    state = run.load_checkpoint()
    return {
        opt: {i: 2 * moments["exp_avg"] for i, moments in state[opt]["state"].items()}
        for opt in ("opt_G", "opt_D")
    }


def _textbook_first_step(run, split) -> dict[str, dict[int, torch.Tensor]]:
    """The same first step in one process, in NCHW layout (torch's other BatchNorm and
    convolution kernels): how far rounding alone moves the gradients, the noise floor."""
    state = init_state(run.config, torch.device("cpu"), fast=False)
    order = torch.randperm(len(split), generator=state.data_rng)
    z = torch.randn(64, run.config.model.z_dim, generator=state.noise_rng)
    training.train_step(state, to_model_range(split.images[order]), z)
    return {
        opt: {i: p.grad for i, p in enumerate(getattr(state, net).parameters())}
        for opt, net in (("opt_G", "generator"), ("opt_D", "discriminator"))
    }


def _deviation(a: dict[int, torch.Tensor], b: dict[int, torch.Tensor]) -> float:
    return max((a[i] - b[i]).abs().max().item() for i in a)


def test_two_ranks_compute_the_cnn_step_of_one_process(tmp_path, fashion_dir):
    """SyncBatchNorm's CPU twin. Step 1's statistics equal one process's within 1e-5. Its
    gradients cannot be compared at 1e-5: the CNN's are ill-conditioned (G's especially),
    so that one process in NCHW layout instead of channels_last already moves them by
    ~3e-5 (torch's channels_last BatchNorm alone rounds 10x more than the synchronised
    form). Two ranks must stay within that noise floor; a BatchNorm on the local half
    batch, or unaveraged gradients, lands orders of magnitude outside it."""
    reference = one_process(tmp_path, fashion_dir, "one", "cnn", 64)
    run, _ = two_ranks(tmp_path, fashion_dir, "two", "cnn", 64)
    assert max(abs(a - b) for a, b in zip(steps(reference)[0], steps(run)[0])) <= 1e-5
    split = load_split("fashion-mnist", "train", fashion_dir, limit=64, progress=False)
    one, two = _first_step_gradients(reference), _first_step_gradients(run)
    floor = _textbook_first_step(reference, split)
    for opt in ("opt_G", "opt_D"):
        noise, got = _deviation(one[opt], floor[opt]), _deviation(one[opt], two[opt])
        print(f"{opt}: 2 ranks vs 1 process {got:.2e}, NCHW vs channels_last {noise:.2e}")
        assert got <= 2 * noise + 1e-6, opt
    expected, synced = reference.load_checkpoint(), run.load_checkpoint()
    for net in ("generator", "discriminator"):
        buffers = {k: v for k, v in expected[net].items() if "running" in k}
        assert largest_difference(buffers, {k: synced[net][k] for k in buffers}) <= 1e-4


def test_two_ranks_cnn_losses_track_one_process_for_50_steps(tmp_path, fashion_dir):
    """50 steps of a global batch of 16 (8 per rank): rounding differs and Adam amplifies
    it, so the losses drift apart slowly, as they do between one process's channels_last
    and NCHW runs. The largest deviations are printed (and in docs/scaling.md)."""
    from ganscope.bench import textbook_loop

    reference = one_process(tmp_path, fashion_dir, "one", "cnn", 800, batch_size=16)
    run, _ = two_ranks(tmp_path, fashion_dir, "two", "cnn", 800, "--batch-size", 16)
    split = load_split("fashion-mnist", "train", fashion_dir, limit=800, progress=False)
    textbook, _ = textbook_loop(reference.config, split, 50)
    a, b = steps(reference), steps(run)
    assert len(a) == len(b) == 50
    first = max(abs(x - y) for x, y in zip(a[0], b[0]))
    deviation = max(abs(x[i] - y[i]) for x, y in zip(a, b) for i in range(2))
    noise = max(abs(x[i] - y[i]) for x, y in zip(a, textbook) for i in range(2))
    print(
        f"CNN losses over 50 steps: 2 ranks vs 1 process {deviation:.4f} "
        f"(step 1: {first:.1e}); NCHW vs channels_last in one process {noise:.4f}"
    )
    assert first <= 1e-5
    assert deviation <= max(3 * noise, 0.01)


def test_a_run_resumes_across_world_sizes(tmp_path, fashion_dir):
    """2 ranks train epoch 1, one process epoch 2, 2 ranks epoch 3: the weights of an
    uninterrupted one-process run, and every record once."""
    reference = one_process(tmp_path, fashion_dir, "one", "mlp", 640, epochs=3)
    run, _ = two_ranks(tmp_path, fashion_dir, "mixed", "mlp", 640)
    trainer.resume(run.path, epochs=2, progress=False)
    result = torchrun("--resume", run.path, "--epochs", 3, "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    run = runs.load_run(run.path)
    for net in ("generator", "discriminator"):
        expected = reference.load_checkpoint()[net]
        assert largest_difference(expected, run.load_checkpoint()[net]) <= 1e-5, net
    assert [r["step"] for r in run.metrics("step")] == list(range(1, 31))
    assert [(r["epoch"], r["processes"]) for r in run.metrics("epoch")] == [(1, 2), (2, 1), (3, 2)]


def test_a_mistake_found_by_every_rank_is_one_line(tmp_path, fashion_dir):
    result = torchrun(
        "--batch-size", 3, "--limit", 64, "--data-dir", fashion_dir, "--out", tmp_path / "r",
        "--device", "cpu",
    )  # fmt: skip
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ganscope: error")]
    assert errors == [
        "ganscope: error: the global batch of 3 images does not split evenly over 2 processes;"
        " pass a --batch-size that 2 divides (or --per-rank-batch to give every process a "
        "whole batch)"
    ]
    assert not (tmp_path / "r").exists()


def test_an_error_in_one_rank_stops_all_ranks(tmp_path, fashion_dir):
    """Rank 1 fails in its 3rd step; rank 0, waiting in an all-reduce, is stopped too: the
    launch ends at once with rank 1's one line, and rank 0's folder keeps no half epoch."""
    script = tmp_path / "fail.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            from ganscope import cli, training
            from ganscope.errors import GanscopeError

            step = training.train_step
            calls = []

            def failing(*args):
                calls.append(1)
                if os.environ["RANK"] == "1" and len(calls) == 3:
                    raise GanscopeError("injected failure on rank 1")
                return step(*args)

            training.train_step = failing
            sys.exit(cli.main(sys.argv[1:]))
            """
        )
    )
    started = time.monotonic()
    result = torchrun(
        "train", "--limit", 640, "--data-dir", fashion_dir, "--out", tmp_path / "r",
        "--device", "cpu", "--no-progress", script=str(script), timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    assert result.stderr.count("ganscope: error: injected failure on rank 1") == 1
    assert not (tmp_path / "r" / "checkpoints" / "last.pt").exists()


def test_per_rank_batch_records_the_global_batch(tmp_path, fashion_dir):
    run, _ = two_ranks(tmp_path, fashion_dir, "scaled", "mlp", 1280, "--per-rank-batch")
    assert run.config.train.batch_size == 128
    assert [r["step"] for r in run.metrics("step")] == list(range(1, 11))


def test_world_helpers_without_torchrun():
    world = distributed.World()
    assert world.main and world.slice(64) == slice(0, 64)
    assert distributed.World(rank=1, size=4).slice(64) == slice(16, 32)
    values = torch.tensor([1.0, 2.0])
    assert world.mean(values) is values and world.agree(lambda: 7) == 7
    distributed.check_batch(64, distributed.World(size=4))
    with pytest.raises(distributed.GanscopeError, match="does not split evenly over 3"):
        distributed.check_batch(64, distributed.World(size=3))
    assert not distributed.launched() or "RANK" in os.environ


@pytest.mark.parametrize("fails", [False, True])
def test_ranks_leave_the_group_together_only_after_a_normal_end(monkeypatch, fails):
    """A rank that left gloo while rank 0 still wrote the last files could abort at exit
    (SIGABRT, seen 1 in 25 resumes under load): a normal end meets the others first; an
    error leaves at once (the other ranks may never get there)."""
    calls = []
    monkeypatch.setattr(distributed, "rendezvous", lambda: calls.append("met"))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda *a, **k: None)
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("left"))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with contextlib.suppress(RuntimeError):
        with distributed.session("cpu") as (world, _):
            assert world.joined and world.size == 2
            if fails:
                raise RuntimeError("a rank failed")
    assert calls == (["left"] if fails else ["met", "left"])


@pytest.fixture
def one_rank_gloo(monkeypatch):
    """A real gloo group of one process (a free port on this machine)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    distributed.dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    distributed.dist.destroy_process_group()


def test_the_last_meeting_waits_until_gloo_lets_go_of_its_tensor(one_rank_gloo, monkeypatch):
    """gloo's barrier left its worker thread freeing tensors after it returned, which aborted
    a rank while Python shut down (1 in 20-60 runs under load, benchmarks/torchrun_exit.sh).
    The last meeting is an all-reduce of its own tensor, and it returns only when nothing
    but Python holds that tensor: here a Work kept by another thread for 0.3 s."""
    import threading

    held, real = {}, distributed.dist.all_reduce

    def all_reduce(tensor):
        held["work"] = real(tensor, async_op=True)
        held["work"].wait()
        threading.Timer(0.3, held.clear).start()

    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    monkeypatch.setattr(distributed.dist, "barrier", lambda *a, **k: pytest.fail("barrier"))
    start = time.monotonic()
    distributed.World(joined=True).barrier()
    assert time.monotonic() - start >= 0.3 and not held
    tensor = torch.zeros(1)
    alone = sys.getrefcount(tensor)
    work = real(tensor, async_op=True)
    assert not distributed.wait_released(tensor, alone, timeout=0.05)
    del work
    assert distributed.wait_released(tensor, alone, timeout=5)


def test_the_last_meeting_is_the_backends_barrier_off_gloo(monkeypatch):
    """NCCL waits at its barrier on the GPU; its collectives are asynchronous to the host, so
    only gloo's all-reduce is a meeting of the ranks."""
    calls = []
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "nccl")
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "all_reduce", lambda *a, **k: calls.append("reduce"))
    distributed.World(joined=True).barrier()
    assert calls == ["barrier"]


def test_global_batchnorm_is_batchnorm_in_one_process():
    from torch import nn

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    synced = distributed.sync_batchnorm(
        nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)), torch.device("cpu")
    )
    synced.load_state_dict(plain.state_dict())
    assert isinstance(synced[1], distributed.GlobalBatchNorm)
    assert synced.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(8, 1, 6, 6)
    assert torch.equal(plain(x), synced(x))
