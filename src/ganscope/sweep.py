"""``ganscope sweep``: a study of ``train``'s settings on Optuna (docs/sweep.md).

A SPACE file (TOML) names the model and preset to start from, the settings to search (any
``TrainConfig`` field, checked as its flag is), the objectives, the sampler and pruner, the
trial count and the epochs. Every trial is an ordinary run folder, ``SWEEP_DIR/trials/
trial-NNNN``, trained with ``--eval-every 1`` so that the per-epoch quality curve feeds the
pruner. The study lives in SQLite in SWEEP_DIR (nothing to run; worker processes on one
machine share it) or in ``--storage postgresql://...`` shared by workers on many machines.
Both keep heartbeats: a worker killed mid-trial leaves its trial to be failed and retried by
the next worker, which resumes the killed trial's run folder from its checkpoint (ganscope's
exact resume), so the result equals an uninterrupted trial's.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import atomic, trainer
from .checks import Checked, require_package, resolve
from .config import DataConfig, option
from .errors import GanscopeError, TrainingDiverged
from .evaluation import evaluate_run, load_reference
from .progress import warn
from .runs import Run, load_run
from .space import TIMING, Space, read_space

INSTALL = "pip install 'ganscope[sweep]'"
DEFAULT_STUDY = "ganscope"
#: The folder of the trials' run folders, and of the confirmation runs.
TRIALS_DIR = "trials"
CONFIRM_DIR = "confirm"
CONFIRM_FILE = "confirm.json"
#: What the confirmation reports per configuration (mean and std over its seeds).
CONFIRM_METRICS = ("fid", "kid", "precision", "recall", "coverage")


@dataclass(frozen=True)
class SweepOptions(Checked):
    """search train's settings with Optuna: every trial a run folder

    Run the study SPACE (a TOML file: docs/sweep.md) into SWEEP_DIR: each trial trains a run
    folder with --eval-every 1, the pruner stops trials whose quality curve lags, and the
    best configurations can be confirmed on fresh seeds. The study is kept in SWEEP_DIR's
    SQLite file, or in --storage (PostgreSQL) for workers on several machines; the same
    command on another machine joins it. With --report, write SWEEP_DIR/report.html instead.
    """

    out: str | None = option(None, "the sweep folder (SWEEP_DIR)", type=str)
    storage: str | None = option(
        None,
        "the study's database URL, e.g. postgresql://user:password@host/db (default: "
        "sqlite in SWEEP_DIR/study.db)",
        type=str,
    )
    study: str = option(DEFAULT_STUDY, "the study's name in the storage")
    workers: int = option(
        1, "worker processes on this machine (each gets cores/N threads)", minimum=1, maximum=64
    )
    report: str | None = option(
        None, "write SWEEP_DIR/report.html for this sweep folder and stop", type=str
    )
    heartbeat: int = option(
        10,
        "seconds between a running trial's heartbeats; a trial silent for more than 3 of them "
        "(its worker was killed; SQLite's clock adds up to 1 s) is retried, resuming its run "
        "folder",
        minimum=1,
    )
    progress: bool = option(True, "no progress lines", flag="--no-progress")

    def check(self) -> None:
        require_package("optuna", "ganscope sweep", INSTALL)


def storage_url(options: SweepOptions, folder: Path) -> str:
    return options.storage or f"sqlite:///{(folder / 'study.db').resolve()}"


def open_storage(url: str, heartbeat: int) -> Any:
    """Optuna's RDB storage with heartbeats; a stale trial is retried up to 3 times."""
    import optuna  # optional: pip install 'ganscope[sweep]'
    from optuna.storages import RetryHeartbeatStaleTrialCallback  # optional, as above

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats and retry histories are marked experimental; they are what this module needs
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        )  # fmt: skip
    except Exception as error:  # SQLAlchemy's errors for a server that is not there
        first = str(error).strip().splitlines()[0][:200]
        raise GanscopeError(f"cannot open the study storage {url}: {first}") from None


def open_study(space: Space, storage: Any, name: str) -> Any:
    """The study ``name``, made for ``space`` or joined; a study of another space is refused."""
    import optuna  # optional: pip install 'ganscope[sweep]'

    study = optuna.create_study(
        storage=storage, study_name=name, load_if_exists=True,
        directions=[direction for _, direction in space.objectives],
        sampler=space.sampler(), pruner=space.pruner(),
    )  # fmt: skip
    digest = space.digest()
    found = study.user_attrs.get("space_sha256")
    if found is None:
        study.set_user_attr("space_sha256", digest)
        study.set_user_attr("space", space.to_json())
    elif found != digest:
        raise GanscopeError(
            f"study {name!r} in this storage was made for another space (sha256 "
            f"{found[:12]}, this one {digest[:12]}); choose another --study name"
        )
    return study


# -- one trial ----------------------------------------------------------------------------------
def value_at(space: Space, run: Run, epoch: int, name: str | None = None) -> float | None:
    """Objective ``name`` (default: the first) after ``epoch``: an evaluation metric from
    the ``eval`` record of that epoch, or the epoch's seconds."""
    name = name or space.objectives[0][0]
    kind = "epoch" if name in TIMING else "eval"
    key = "seconds" if name in TIMING else name
    found = [r[key] for r in run.metrics(kind) if r.get("epoch") == epoch and key in r]
    return float(found[-1]) if found else None


def values(space: Space, run: Run) -> tuple[float, ...]:
    """The trial's objective values: the metrics at ``objective_epoch`` (default: the last),
    seconds per epoch as the mean over its epochs."""
    epoch = space.objective_epoch or space.epochs
    out = []
    for name, _ in space.objectives:
        if name in TIMING:
            seconds = [r["seconds"] for r in run.metrics("epoch") if r.get("seconds")]
            value = statistics.fmean(seconds) if seconds else None
        else:
            value = value_at(space, run, epoch, name)
        if value is None:
            raise GanscopeError(f"run {run.path} has no {name} for epoch {epoch}")
        out.append(value)
    return tuple(out)


class _Reporter:
    """The epoch callback of a trial: each epoch's objective value to the pruner."""

    def __init__(self, trial: Any, space: Space) -> None:
        self.trial, self.space = trial, space

    def __call__(self, run: Run, state: Any, record: dict[str, Any]) -> None:
        self.report(run, int(record["epoch"]))

    def report(self, run: Run, epoch: int) -> None:
        import optuna  # optional: pip install 'ganscope[sweep]'

        if len(self.space.objectives) > 1:  # Optuna prunes single-objective studies only
            return
        value = value_at(self.space, run, epoch)
        if value is None:
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.trial.set_user_attr("pruned_at", epoch)
            raise optuna.TrialPruned(f"epoch {epoch}: {value:.4g} lags the other trials")


def root_trial(trial: Any) -> int:
    """The number of the trial whose run folder this one continues (itself, or the first
    trial of a chain of retries after killed workers)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback  # optional, as in open_storage

    frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    history = RetryHeartbeatStaleTrialCallback.retry_history(frozen)
    return history[0] if history else trial.number


class TakenGridPoint(Exception):
    """Two workers were handed one grid point at once: the later trial gives it up."""


class _QuietTakenPoints(logging.Filter):
    """Optuna logs a caught exception with its traceback and a second line; a taken grid
    point is expected bookkeeping, so both become one progress line of ours."""

    def __init__(self) -> None:
        super().__init__()
        self.quiet: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if isinstance(error, TakenGridPoint):
            number = message.split()[1]
            self.quiet.add(number)
            warn(f"trial {number}: {error}; the worker takes the next point")
            return False
        return not (message.startswith("Trial ") and message.split()[1] in self.quiet)


def _check_grid_point(trial: Any, space: Space) -> None:
    """In a grid study, fail the trial at once (a failed trial does not count) when an
    earlier trial, running or finished, holds the same point: Optuna's grid sampler can hand
    one point to two workers that ask at the same moment, and training it twice is waste."""
    from optuna.trial import TrialState  # optional: pip install 'ganscope[sweep]'

    if space.sampler_name != "grid":
        return
    states = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
    for other in trial.study.get_trials(deepcopy=False, states=states):
        if other.number < trial.number and other.params == trial.params:
            trial.set_user_attr("duplicate_of", other.number)
            raise TakenGridPoint(f"grid point {trial.params} is trial {other.number}'s")


def run_trial(trial: Any, space: Space, folder: Path, progress: bool) -> tuple[float, ...]:
    """Train (or resume) the trial's run folder and return its objective values."""
    params = space.suggest(trial)
    _check_grid_point(trial, space)
    number = root_trial(trial)
    path = folder / TRIALS_DIR / f"trial-{number:04d}"
    trial.set_user_attr("run", str(path.relative_to(folder)))
    config = space.config(params)
    reporter = _Reporter(trial, space)
    started = time.perf_counter()
    try:
        if (path / "config.json").is_file():
            run = load_run(path)
            for epoch in sorted({r["epoch"] for r in run.metrics("eval")}):
                reporter.report(run, epoch)  # the curve so far, to the pruner
            if not run.has_checkpoint() or run.latest_epoch() < config.train.epochs:
                trial.set_user_attr(
                    "resumed_from", run.latest_epoch() if run.has_checkpoint() else 0
                )
                run = trainer.resume(path, callbacks=[reporter], progress=progress)
        else:
            run = trainer.train(config, path, callbacks=[reporter], progress=progress)
    except TrainingDiverged as error:
        trial.set_user_attr("error", str(error))
        raise
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
    return values(space, run)


# -- the study ----------------------------------------------------------------------------------
def sweep(space_path: str | Path, options: SweepOptions | None = None, **overrides: Any) -> dict:
    """Run (or join) the study of ``space_path``; returns the summary of the sweep folder."""
    opts = resolve(SweepOptions, options, overrides)
    if opts.out is None:
        raise GanscopeError("give --out SWEEP_DIR, the folder of the study's trials")
    space = read_space(space_path)
    folder = Path(opts.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.toml").write_bytes(Path(space_path).read_bytes())
    url = storage_url(opts, folder)
    study = open_study(space, open_storage(url, opts.heartbeat), opts.study)
    threads = space.threads or max(1, (os.cpu_count() or 1) // opts.workers)
    helpers = [_spawn(space_path, opts, url, threads) for _ in range(opts.workers - 1)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _work(study, space, folder, opts.progress)
    finally:
        torch.set_num_threads(before)  # a Python caller keeps its own setting
        failed = [helper.wait() for helper in helpers]
    if any(failed):
        raise GanscopeError(f"{sum(1 for f in failed if f)} worker process(es) failed")
    if space.confirm_top:
        confirm(study, space, folder, opts.progress)
    return summary(study, folder)


def _work(study: Any, space: Space, folder: Path, progress: bool) -> None:
    from optuna.study import MaxTrialsCallback  # optional, as above
    from optuna.trial import TrialState  # optional, as above

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    if len(study.get_trials(deepcopy=False, states=done)) >= space.trials:
        return
    optimizer_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _QuietTakenPoints) for f in optimizer_log.filters):
        optimizer_log.addFilter(_QuietTakenPoints())
    study.optimize(
        lambda trial: run_trial(trial, space, folder, progress),
        callbacks=[MaxTrialsCallback(space.trials, states=done)],
        catch=(TrainingDiverged, TakenGridPoint),
    )


def _spawn(space_path: str | Path, opts: SweepOptions, url: str, threads: int) -> Any:
    """Another worker process on this machine, joining the same study."""
    argv = [sys.executable, "-m", "ganscope", "sweep", str(space_path), "--out", str(opts.out),
            "--storage", url, "--study", opts.study, "--workers", "1", "--no-progress",
            "--heartbeat", str(opts.heartbeat)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GANSCOPE_SWEEP_WORKER": "1"}
    return subprocess.Popen(argv, env=env)


# -- confirmation on fresh seeds -------------------------------------------------------------------
def confirm(study: Any, space: Space, folder: Path, progress: bool) -> list[dict[str, Any]]:
    """The best ``confirm_top`` configurations, each trained on the fresh seeds and evaluated
    on ``confirm_n`` samples: mean and std per configuration (``confirm.json``)."""
    from optuna.trial import TrialState  # optional: pip install 'ganscope[sweep]'

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = sorted(complete, key=lambda t: space.sort_key(t.values))[: space.confirm_top]
    # one test set for every confirmation run: its features are computed once
    reference = load_reference(DataConfig().dataset, space.data_dir or None, progress=progress)
    rows = []
    for trial in best:
        measured = []
        for seed in space.confirm_seeds:
            path = folder / CONFIRM_DIR / f"trial-{trial.number:04d}-seed{seed}"
            config = space.config(trial.params, seed=seed)
            run = _confirm_run(config, path, progress)
            record = evaluate_run(run, n=space.confirm_n, progress=progress, reference=reference)
            measured.append({name: record[name] for name in CONFIRM_METRICS})
        rows.append(_confirm_row(trial, measured, space))
    atomic.write_json(folder / CONFIRM_FILE, rows)
    return rows


def _confirm_run(config: Any, path: Path, progress: bool) -> Run:
    if not (path / "config.json").is_file():
        return trainer.train(config, path, progress=progress)
    run = load_run(path)
    if run.has_checkpoint() and run.latest_epoch() >= config.train.epochs:
        return run
    return trainer.resume(path, progress=progress)


def _confirm_row(trial: Any, values: list[dict[str, float]], space: Space) -> dict[str, Any]:
    row: dict[str, Any] = {"trial": trial.number, "params": trial.params,
                           "seeds": list(space.confirm_seeds), "n": space.confirm_n}  # fmt: skip
    for name in values[0]:
        column = [v[name] for v in values]
        row[name] = statistics.fmean(column)
        row[f"{name}_std"] = statistics.stdev(column) if len(column) > 1 else None
    return row


# -- what the report shows -----------------------------------------------------------------
def summary(study: Any, folder: Path) -> dict[str, Any]:
    """The sweep as data: every trial (number, state, params, values, intermediate values,
    run folder), the best trials (the Pareto front), parameter importances, confirmation."""
    import optuna  # optional: pip install 'ganscope[sweep]'

    space = Space.from_json(study.user_attrs["space"])
    trials = [
        {
            "number": t.number, "state": t.state.name, "params": t.params,
            "values": t.values, "curve": dict(sorted(t.intermediate_values.items())),
            "run": t.user_attrs.get("run"), "pruned_at": t.user_attrs.get("pruned_at"),
            "seconds": t.user_attrs.get("seconds"),
            "retry_of": t.system_attrs.get("failed_trial"),
        }
        for t in study.get_trials(deepcopy=False)
    ]  # fmt: skip
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = [t.number for t in study.best_trials] if complete else []
    importances: dict[str, float] = {}
    if len(complete) >= 2 and len(space.objectives) == 1 and space.params:
        try:
            importances = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError):  # e.g. one value for every parameter
            importances = {}
    confirm_path = folder / CONFIRM_FILE
    confirmed = json.loads(confirm_path.read_text()) if confirm_path.is_file() else []
    return {"study": study.study_name, "space": space.to_dict(), "trials": trials,
            "objectives": space.objectives, "best": best, "importances": importances,
            "confirm": confirmed}  # fmt: skip


def load_summary(folder: str | Path, storage: str | None, name: str) -> dict[str, Any]:
    """The summary of an existing sweep folder (``--report``)."""
    import optuna  # optional: pip install 'ganscope[sweep]'

    folder = Path(folder)
    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    if storage is None and not (folder / "study.db").is_file():
        raise GanscopeError(f"{folder} holds no study (no study.db); is it a sweep folder?")
    try:
        study = optuna.load_study(study_name=name, storage=url)
    except KeyError:
        raise GanscopeError(f"no study {name!r} in {url}") from None
    return summary(study, folder)
