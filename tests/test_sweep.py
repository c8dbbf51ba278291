"""``ganscope sweep``: studies of tiny MLP trials on real data, with one and two workers, on
SQLite and on a real PostgreSQL server, a worker killed mid-trial, pruning, the report."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from ganscope.cli import main
from ganscope.errors import GanscopeError

optuna = pytest.importorskip("optuna")
from ganscope import sweep as sweeping  # noqa: E402
from ganscope.runs import load_run  # noqa: E402
from ganscope.space import read_space  # noqa: E402

pytestmark = pytest.mark.slow


def space_file(folder: Path, fashion_dir: Path, **study) -> Path:
    settings = {"model": '"mlp"', "epochs": 2, "trials": 4, "sampler": '"grid"', "pruner": '"none"',
                "limit": 1500, "eval_samples": 100, "threads": 1,
                "data_dir": f'"{fashion_dir}"'}  # fmt: skip
    settings.update({k: (f'"{v}"' if isinstance(v, str) else v) for k, v in study.items()})
    lines = ["[study]", *(f"{k} = {v}" for k, v in settings.items()), "", "[params]",
             "lr = { choices = [0.0002, 0.002] }", "beta1 = { choices = [0.5, 0.9] }"]  # fmt: skip
    path = folder / "space.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _outcome(result: dict) -> dict[tuple, tuple]:
    """params -> (state, values) of every finished trial."""
    return {
        tuple(sorted(t["params"].items())): (t["state"], t["values"])
        for t in result["trials"]
        if t["state"] in ("COMPLETE", "PRUNED")
    }


def _best(result: dict) -> list[dict]:
    return [t["params"] for t in result["trials"] if t["number"] in result["best"]]


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, fashion_dir):
    folder = tmp_path_factory.mktemp("sweep1")
    space = space_file(folder, fashion_dir)
    return space, sweeping.sweep(space, out=str(folder / "out"), progress=False)


def test_a_grid_study_trains_every_point_as_a_run_folder(one_worker):
    space, result = one_worker
    assert len(_outcome(result)) == 4  # the whole 2x2 grid
    for trial in result["trials"]:
        run = load_run(Path(space).parent / "out" / trial["run"])
        assert {"lr", "beta1"} <= set(trial["params"])
        assert run.config.train.lr == trial["params"]["lr"] and run.config.train.eval_every == 1
    assert result["best"] and result["importances"]


def test_two_workers_give_the_same_trials_and_best(one_worker, tmp_path):
    space, result = one_worker
    two = sweeping.sweep(space, out=str(tmp_path / "two"), workers=2, progress=False)
    assert _outcome(two) == _outcome(result)
    assert _best(two) == _best(result)


def test_the_report_page(one_worker, capsys):
    space, _ = one_worker
    folder = Path(space).parent / "out"
    assert main(["sweep", "--report", str(folder)]) == 0
    html = (folder / "report.html").read_text()
    assert "Trials" in html and "optimisation history" not in html  # a figure, not text
    assert html.count("data:image/png;base64") >= 3  # history, importances, a grid
    assert "★" in (folder / "report.md").read_text()


def test_a_study_of_another_space_is_refused(one_worker, fashion_dir, tmp_path):
    space, _ = one_worker
    other = space_file(tmp_path, fashion_dir, epochs=3)
    with pytest.raises(GanscopeError, match="made for another space"):
        sweeping.sweep(other, out=str(Path(space).parent / "out"), progress=False)


def test_pruning_stops_a_trial_worse_than_the_median(tmp_path, fashion_dir):
    """Two finished trials with a far better curve than a real one can reach: the real trial
    is pruned after its first epoch, and its run folder stops there."""
    space_path = space_file(tmp_path, fashion_dir, epochs=3, trials=3, sampler="random",
                            pruner="median")  # fmt: skip
    space = read_space(space_path)
    folder = tmp_path / "out"
    folder.mkdir()
    storage = sweeping.open_storage(
        sweeping.storage_url(sweeping.SweepOptions(out=str(folder)), folder), 10
    )
    study = sweeping.open_study(space, storage, "ganscope")
    choices = optuna.distributions.CategoricalDistribution
    grid = {"lr": choices([0.0002, 0.002]), "beta1": choices([0.5, 0.9])}
    for lr in (0.0002, 0.002):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr, "beta1": 0.5}, distributions=grid,
            value=1.0, intermediate_values={1: 1.0, 2: 1.0, 3: 1.0},
        ))  # fmt: skip
    result = sweeping.sweep(space_path, out=str(folder), progress=False)
    real = [t for t in result["trials"] if t["run"]]
    assert len(real) == 1 and real[0]["state"] == "PRUNED" and real[0]["pruned_at"] == 1
    run = load_run(folder / real[0]["run"])
    assert run.latest_epoch() == 1 and run.config.train.epochs == 3


def test_a_killed_worker_s_trial_is_retried_and_resumes_bit_exactly(tmp_path, fashion_dir):
    space = space_file(tmp_path, fashion_dir, epochs=6, trials=1, limit=3000)
    space.write_text(space.read_text().replace("[0.0002, 0.002]", "[0.0002]")
                     .replace("[0.5, 0.9]", "[0.5]"))  # fmt: skip
    killed = tmp_path / "killed"
    argv = [sys.executable, "-m", "ganscope", "sweep", str(space), "--out", str(killed),
            "--heartbeat", "1", "--no-progress"]  # fmt: skip
    worker = subprocess.Popen(argv, env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = killed / "trials" / "trial-0000" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and '"kind": "eval", "epoch": 2' not in (
        metrics.read_text() if metrics.is_file() else ""
    ):
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    run = load_run(metrics.parent)
    assert 2 <= run.latest_epoch() < 6  # killed mid-trial
    # stale once more than 3 beats of 1 s have passed; SQLite's clock counts whole seconds, so
    # that can take up to 5 s after the last beat (3.5 s failed CI once, reading 3)
    time.sleep(5.5)
    result = sweeping.sweep(space, out=str(killed), heartbeat=1, progress=False)
    states = {t["number"]: (t["state"], t["retry_of"]) for t in result["trials"]}
    assert states == {0: ("FAIL", None), 1: ("COMPLETE", 0)}
    assert result["trials"][1]["run"] == "trials/trial-0000"  # the same run folder, resumed
    whole = sweeping.sweep(space, out=str(tmp_path / "whole"), progress=False)
    assert whole["trials"][0]["values"] == result["trials"][1]["values"]
    resumed = torch.load(metrics.parent / "checkpoints" / "last.pt", weights_only=True)
    uninterrupted = torch.load(
        tmp_path / "whole" / "trials" / "trial-0000" / "checkpoints" / "last.pt", weights_only=True
    )
    for key, tensor in uninterrupted["generator"].items():
        assert torch.equal(resumed["generator"][key], tensor), key


# -- PostgreSQL ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server on a free port (Debian's package, which .ci/run installs),
    for the duration of the module; skipped where there is none."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"))  # not on PATH in Debian
    path = os.pathsep.join([*map(str, debian[-1:]), os.environ.get("PATH", "")])
    initdb, pg_ctl = shutil.which("initdb", path=path), shutil.which("pg_ctl", path=path)
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    data = Path(tempfile.mkdtemp(prefix="ganscope-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(data, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run([*as_user, initdb, "-D", str(data / "db"), "-U", "ganscope",
                    "--auth=trust", "-E", "UTF8"], check=True, **quiet)  # fmt: skip
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, pg_ctl, "-D", str(data / "db"), "-o", options, "-w",
                    "-l", str(data / "log"), "start"], check=True, **quiet)  # fmt: skip
    yield f"postgresql://ganscope@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, pg_ctl, "-D", str(data / "db"), "-m", "immediate", "stop"], **quiet)
    shutil.rmtree(data, ignore_errors=True)


def test_two_workers_share_a_study_on_postgresql(postgres, one_worker, tmp_path):
    space, result = one_worker
    out = tmp_path / "pg"
    shared = sweeping.sweep(space, out=str(out), storage=postgres, study="pg-test", workers=2,
                            progress=False)  # fmt: skip
    assert _outcome(shared) == _outcome(result) and _best(shared) == _best(result)
    assert not (out / "study.db").exists()  # the study lives in the server
    again = sweeping.load_summary(out, postgres, "pg-test")
    assert len(again["trials"]) == len(shared["trials"])


def test_two_objectives_a_pareto_front_and_a_confirmation(tmp_path, fashion_dir):
    """FID and seconds per epoch: the best trials are the Pareto front; the best by FID is
    trained again on two fresh seeds and evaluated, mean and std in confirm.json and the page."""
    space = space_file(tmp_path, fashion_dir, epochs=1, trials=2, sampler="random")
    objectives = '[study]\nobjectives = ["fid", "seconds_per_epoch"]'
    confirm = "\n[confirm]\ntop = 1\nseeds = [1, 2]\nn = 60\n"
    space.write_text(space.read_text().replace("[study]", objectives) + confirm)
    folder = tmp_path / "out"
    result = sweeping.sweep(space, out=str(folder), progress=False)
    assert [len(t["values"]) for t in result["trials"]] == [2, 2] and result["best"]
    (row,) = result["confirm"]
    assert row["seeds"] == [1, 2] and row["n"] == 60 and row["fid_std"] is not None
    best_fid = min(result["trials"], key=lambda t: t["values"][0])
    assert row["trial"] == best_fid["number"]
    for seed in (1, 2):
        run = load_run(folder / "confirm" / f"trial-{row['trial']:04d}-seed{seed}")
        assert run.config.train.seed == seed and run.config.train.lr == best_fid["params"]["lr"]
    assert main(["sweep", "--report", str(folder)]) == 0
    page = (folder / "report.md").read_text()
    assert "pareto.png" in page and "Confirmation on fresh seeds" in page


def test_a_grid_point_handed_to_two_workers_is_trained_once(tmp_path):
    """Optuna's grid sampler can give one point to two workers asking at once; the later
    trial fails at once (not counted) instead of training the same run again."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    from ganscope.space import parse_space

    space = parse_space(
        {
            "study": {"model": "mlp", "epochs": 1, "trials": 2, "sampler": "grid"},
            "params": {"lr": {"choices": [0.0002, 0.002]}},
        }  # fmt: skip
    )
    study = optuna.create_study(sampler=space.sampler())
    lr = CategoricalDistribution([0.0002, 0.002])
    study.add_trial(create_trial(params={"lr": 0.0002}, distributions={"lr": lr}, value=1.0))
    study.enqueue_trial({"lr": 0.0002})  # what the second worker was handed
    study.optimize(
        lambda trial: sweeping.run_trial(trial, space, tmp_path, False),
        n_trials=1, catch=(sweeping.TakenGridPoint,),
    )  # fmt: skip
    last = study.trials[-1]
    assert last.state == TrialState.FAIL and last.user_attrs["duplicate_of"] == 0
    assert not (tmp_path / "trials").exists()  # nothing trained


def test_a_taken_grid_point_is_one_line_not_a_traceback(capsys):
    import logging

    quiet = sweeping._QuietTakenPoints()
    error = sweeping.TakenGridPoint("grid point {'lr': 0.1} is trial 3's")

    def record(message, exc=None):
        info = (type(exc), exc, None) if exc else None
        return logging.LogRecord("optuna", logging.WARNING, "", 0, message, (), info)

    assert not quiet.filter(record("Trial 7 failed with parameters: {} because ...", error))
    assert not quiet.filter(record("Trial 7 failed with value None."))
    assert quiet.filter(record("Trial 8 failed with value None."))  # another trial's: kept
    assert quiet.filter(record("Trial 9 failed because ...", ValueError("x")))
    err = capsys.readouterr().err
    assert "trial 7: grid point {'lr': 0.1} is trial 3's; the worker takes the next point" in err
