"""The run folder: the one place a training run keeps everything a later command needs.

:class:`Run` owns the folder's layout: every path and every result's file name comes from
here (``docs/architecture.md`` shows the tree). Results computed from a run (evaluations,
analyses) carry a header (:meth:`Run.result_header`) and are found by reading it, never by
the order of file names. Every file is written atomically (``atomic``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__, atomic, checkpoints, foreign, pretrained
from .config import FORMAT_VERSION, RunConfig
from .devices import prepare_module, resolve_device
from .errors import GanscopeError
from .metrics_log import (  # noqa: F401 - the metrics log's functions, as runs.* for callers
    DAMAGED_METRICS_FILE,
    append_metrics,
    read_metrics,
    truncate_metrics,
)
from .models import build_generator
from .state import EMA_KEY

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
SAMPLES_DIR = "samples"
FIGURES_DIR = "figures"
EVALUATION_DIR = "evaluation"
ANALYSIS_DIR = "analysis"
TRAVERSALS_DIR = "traversals"
#: The record of a pretrained run shipped in the package: the command, device, versions.
SHIPPED_FILE = "pretrained.json"
#: The OS lock a writing command holds for its whole life, and who holds it (PID, command).
LOCK_FILE = ".lock"
WRITER_FILE = ".writer"
#: What only training writes; other commands' outputs must never replace these.
STATE_FILES = (
    CONFIG_FILE, METRICS_FILE, CHECKPOINT_DIR, LOCK_FILE, WRITER_FILE, DAMAGED_METRICS_FILE,
)  # fmt: skip

#: An evaluation record of G's own weights in an ``--ema`` run has ``"weights"`` this.
TRAINED_WEIGHTS = "trained"


@dataclass(frozen=True)
class AnalysisFiles:
    """The files of an analysis, in ``RUN/analysis`` or an ``--out`` folder: their names are
    written here only."""

    folder: Path

    @property
    def record(self) -> Path:
        """``dims.json``, written last: its presence means a finished analysis."""
        return self.folder / "dims.json"

    def table(self, kind: str = "dims", suffix: str = ".csv") -> Path:
        """``dims.csv`` (the dimensions), ``sefa.csv``, ``pca.csv``; ``methods.csv``, ``.md``,
        ``.json``, ``.png``: the scored comparison of direction methods (``methods``)."""
        return self.folder / f"{kind}{suffix}"

    def class_shifts(self, kind: str | None = None) -> Path:
        return self.folder / ("class_shifts.png" if kind is None else f"class_shifts_{kind}.png")

    def grid(self, dim: int | str) -> Path:
        """The report-style three-row figure of dimension ``dim`` (or a named direction)."""
        return self.folder / "grids" / (f"dim_{dim:03d}.png" if isinstance(dim, int) else dim)

    def strength_by_epoch(self, suffix: str) -> Path:
        """``.csv`` or ``.png``: each dimension's strength in every epoch's generator."""
        return self.folder / f"strength_by_epoch{suffix}"

    def summary(self, lang: str) -> Path:
        return self.folder / f"summary.{lang}.md"


def traversal_path(folder: Path, dim: int | None = None) -> Path:
    """``traverse``'s figure of dimension ``dim`` in ``folder``; ``None``: the overview."""
    return folder / ("overview.png" if dim is None else f"dim_{dim:03d}.png")


def closest_pairs_path(evaluation_path: Path) -> Path:
    """The figure of the samples closest to a training image, beside its evaluation."""
    return evaluation_path.with_name(evaluation_path.stem + "_closest.png")


class _InRun:
    """A fixed path inside the run folder, read as an attribute: ``run.metrics_path``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, run: Run | None, owner: type | None = None) -> Any:
        return self if run is None else run.path.joinpath(*self.parts)


class Run:
    """A run folder on disk. Get one with :func:`load_run` (or from ``ganscope.train``)."""

    def __init__(self, path: Path, config: RunConfig, meta: dict[str, Any]) -> None:
        self.path, self.config, self.meta = path, config, meta

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.config.model.name!r})"

    # -- the layout -----------------------------------------------------------------------
    config_path = _InRun(CONFIG_FILE)
    #: How a shipped pretrained run was made (``pretrained``); only such runs have one.
    shipped_record = _InRun(SHIPPED_FILE)
    metrics_path = _InRun(METRICS_FILE)
    #: The full training state after the latest finished epoch.
    checkpoint_path = _InRun(CHECKPOINT_DIR, "last.pt")
    #: The full training state within an unfinished epoch (every --checkpoint-minutes).
    partial_checkpoint_path = _InRun(CHECKPOINT_DIR, "partial.pt")
    losses_figure = _InRun(FIGURES_DIR, "losses.png")
    progress_gif = _InRun(FIGURES_DIR, "progress.gif")
    traversals_dir = _InRun(TRAVERSALS_DIR)
    analysis_dir = _InRun(ANALYSIS_DIR)
    #: The files of the run's own analysis (``RUN/analysis``).
    analysis = property(lambda self: AnalysisFiles(self.analysis_dir))
    evaluation_dir = _InRun(EVALUATION_DIR)
    #: TensorBoard's event files (``train --tensorboard``).
    tensorboard_dir = _InRun("tensorboard")

    def export_path(self, epoch: int, suffix: str) -> Path:
        """``ganscope export``'s default file for G after ``epoch`` (``.onnx`` or ``.pt``)."""
        return self.path / "exports" / f"generator_epoch_{epoch:03d}{suffix}"

    def snapshot_path(self, epoch: int) -> Path:
        """G's weights after ``epoch``."""
        return self.path / CHECKPOINT_DIR / f"generator_epoch_{epoch:03d}.pt"

    def sample_grid_path(self, epoch: int) -> Path:
        """The fixed-noise grid after ``epoch``."""
        return self.path / SAMPLES_DIR / f"epoch_{epoch:03d}.png"

    def sample_grid_paths(self) -> dict[int, Path]:
        """Epoch -> the fixed-noise grid after it, in epoch order; other files beside them
        (``epoch_abc.png``, a copy someone made) are not grids and are left out."""
        found = {}
        for path in (self.path / SAMPLES_DIR).glob("epoch_*.png"):
            digits = path.stem.removeprefix("epoch_")
            if digits.isascii() and digits.isdigit():
                found[int(digits)] = path
        return dict(sorted(found.items()))

    def samples_path(self, seed: int, n: int) -> Path:
        return self.path / SAMPLES_DIR / f"sample_seed{seed}_n{n}.png"

    def figure_path(self, name: str) -> Path:
        """``losses.png``, ``progress.gif``, interpolation strips, ..."""
        return self.path / FIGURES_DIR / name

    def interpolation_path(self, seeds: Iterable[int], method: str) -> Path:
        return self.figure_path(f"interpolate_{'_'.join(map(str, seeds))}_{method}.png")

    def evaluation_path(self, epoch: int, seed: int, n: int, trained: bool = False) -> Path:
        """An evaluation's record; ``trained``: of G's own weights in a run with ``--ema``
        (``ganscope evaluate --trained-weights``), kept apart from the run's own results."""
        suffix = "_trained" if trained else ""
        return self.evaluation_dir / f"epoch_{epoch:03d}_seed{seed}_n{n}{suffix}.json"

    def is_state_file(self, path: str | Path) -> bool:
        """Whether ``path`` is one of the files only training may write."""
        try:
            relative = Path(path).resolve().relative_to(self.path.resolve())
        except ValueError:
            return False
        return bool(relative.parts) and relative.parts[0] in STATE_FILES

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def imported(self) -> bool:
        """Whether the generator was trained elsewhere (``ganscope import``)."""
        return self.config.source.imported

    @property
    def snapshots_only(self) -> bool:
        """A shipped pretrained run (``pretrained``): G's snapshots and the results, no
        training state; its latest epoch is its latest snapshot's."""
        return self.shipped_record.is_file() and not self.checkpoint_path.is_file()

    def has_checkpoint(self) -> bool:
        return self.imported or self.snapshots_only or self.checkpoint_path.is_file()

    def load_checkpoint(self, map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """The full training state saved after the latest finished epoch."""
        self._require_checkpoint()
        return checkpoints.load(self.checkpoint_path, map_location)

    def _require_checkpoint(self) -> None:
        if not self.has_checkpoint():
            raise GanscopeError(
                f"run folder {self.path} has no checkpoint yet (no epoch finished); "
                f"train it with: ganscope train --resume {self.path}"
            )

    def load_partial_checkpoint(
        self, map_location: str | torch.device = "cpu"
    ) -> dict[str, Any] | None:
        """The training state saved within an unfinished epoch, or None if there is none.

        An unreadable one is skipped with a warning: it only ever saves time, and the last
        finished epoch's checkpoint is still there.
        """
        if not self.partial_checkpoint_path.is_file():
            return None
        try:
            return checkpoints.load(self.partial_checkpoint_path, map_location)
        except GanscopeError as error:
            warnings.warn(f"{error}; resuming from the last finished epoch instead", stacklevel=2)
            return None

    def latest_epoch(self) -> int:
        """The epoch of the latest checkpoint (its tensors are mapped, not read)."""
        if self.imported:
            return max(self.config.source.epochs)
        if self.snapshots_only and self.generator_epochs():
            return self.generator_epochs()[-1]
        self._require_checkpoint()
        return int(checkpoints.load(self.checkpoint_path, "cpu", ("epoch",), mmap=True)["epoch"])

    def generator_epochs(self) -> list[int]:
        """Epochs for which a generator snapshot exists, in order."""
        if self.imported:
            return sorted(self.config.source.epochs)
        epochs = []
        for file in (self.path / CHECKPOINT_DIR).glob("generator_epoch_*.pt"):
            try:
                epochs.append(int(file.stem.rsplit("_", 1)[1]))
            except ValueError:
                continue
        return sorted(epochs)

    def generator_at(
        self, epoch: int | None = None, device: str | torch.device = "cpu", trained: bool = False
    ) -> tuple[nn.Module, int]:
        """The generator in eval mode and the epoch whose weights it holds (``None``: the
        latest). Results must be labelled with this epoch, read from the same file as the
        weights, not with one looked up again later.

        A run trained with ``--ema`` samples from the moving average of G's weights; with
        ``trained`` this gives G's own weights instead, which only the latest epoch's
        checkpoint keeps. The moving average never feeds back into training, so they are
        the weights the same run without ``--ema`` ends with."""

        device = resolve_device(str(device))
        if self.imported and not trained:
            epoch = self.latest_epoch() if epoch is None else epoch
            cfg = self.config
            generator = foreign.load_generator(
                self.path, cfg.source, epoch, cfg.model.z_dim, cfg.num_classes
            )
            return generator.to(device), epoch
        if epoch is None and not trained and self.snapshots_only:
            epoch = self.latest_epoch()
        if trained:
            path = self._trained_weights_path(epoch)
        elif epoch is None:
            self._require_checkpoint()
            path = self.checkpoint_path
        else:
            available = self.generator_epochs()
            if epoch not in available:
                raise GanscopeError(
                    f"run {self.path} has no generator for epoch {epoch}; "
                    f"available: {available or 'none'}"
                )
            path = self.snapshot_path(epoch)
        state = checkpoints.load(path, "cpu", checkpoints.SNAPSHOT_KEYS)
        if trained and epoch is not None and state["epoch"] != epoch:  # training went on
            raise GanscopeError(
                f"run {self.path} moved on to epoch {state['epoch']} while its checkpoint was "
                f"read; G's own weights of epoch {epoch} are gone"
            )
        cfg = self.config
        generator = build_generator(cfg.model.name, cfg.model.z_dim, cfg.num_classes)
        # --ema: the average, unless G's own weights are asked for
        weights = state["generator"] if trained else state.get(EMA_KEY, state["generator"])
        checkpoints.load_generator(generator, weights, path)
        generator = prepare_module(generator, self.config.model.name, device)
        return generator.eval(), int(state["epoch"])

    def _trained_weights_path(self, epoch: int | None) -> Path:
        """The checkpoint that holds G's own weights besides their moving average."""
        if not self.config.train.ema or self.imported:
            raise GanscopeError(
                f"run {self.path} was not trained with --ema: its generator is G's own "
                "weights already (drop --trained-weights)"
            )
        latest = self.latest_epoch()
        if epoch is not None and epoch != latest:
            raise GanscopeError(
                f"run {self.path} keeps G's own weights only for its latest epoch ({latest}); "
                f"the snapshot of epoch {epoch} holds the moving average alone"
            )
        return self.checkpoint_path

    def generator(self, epoch: int | None = None, device: str | torch.device = "cpu") -> nn.Module:
        """The trained generator in eval mode, usable without any trainer.

        ``epoch=None`` gives the latest one; otherwise the snapshot saved after that epoch.
        """
        return self.generator_at(epoch, device)[0]

    # -- results --------------------------------------------------------------------------
    def metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Records of ``metrics.jsonl`` (optionally only those of one ``kind``)."""
        return [r for r in read_metrics(self.metrics_path) if kind is None or r.get("kind") == kind]

    def result_header(
        self, epoch: int, n: int, seed: int, classifier_sha256: str
    ) -> dict[str, Any]:
        """What identifies a result computed from this run's generator after ``epoch``, with
        ``n`` latent vectors of ``seed``, in the feature space of that classifier."""
        return {
            "run": str(self.path),
            "model": self.config.model.name,
            "epoch": epoch,
            "n": n,
            "seed": seed,
            "classifier_sha256": classifier_sha256,
        }

    def evaluations(self) -> list[dict[str, Any]]:
        """Every readable evaluation record of this run's generator (damaged ones, and
        those of G's own weights in an ``--ema`` run, are skipped)."""
        records = []
        for path in sorted(self.evaluation_dir.glob("epoch_*_seed*_n*.json")):
            try:
                record = atomic.read_json(path)
            except GanscopeError:
                continue
            usable = isinstance(record, dict) and all(
                isinstance(record.get(k), int) for k in ("epoch", "n", "seed")
            )
            # G's own weights of an --ema run are not the run's generator: never its result.
            usable = usable and record.get("weights") != TRAINED_WEIGHTS
            if usable and isinstance(record.get("fid"), float | int):
                records.append(record)
        return records

    def find_evaluation(self, **header: Any) -> dict[str, Any] | None:
        """The evaluation whose header matches ``header`` (e.g. ``epoch``, ``seed``,
        ``classifier_sha256``, ``n``); of several, the one with the most samples."""
        matches = [r for r in self.evaluations() if all(r.get(k) == v for k, v in header.items())]
        return max(matches, key=lambda r: r["n"], default=None)

    def analysis_record(self) -> dict[str, Any] | None:
        """``analysis/dims.json`` (None when there is none or it is unreadable)."""
        try:
            record = atomic.read_json(self.analysis.record)
        except GanscopeError:
            return None
        return record if isinstance(record, dict) else None

    # -- writing --------------------------------------------------------------------------
    def save_config(self, config: RunConfig, command: list[str] | None = None) -> None:
        """Write ``config.json``; ``command`` is appended to the history of command lines."""

        self.config = config
        commands = list(self.meta.get("commands", []))
        if command is not None:
            commands.append(list(command))
        self.meta = {
            "format_version": FORMAT_VERSION,
            "ganscope_version": __version__,
            "torch_version": torch.__version__,
            "commands": commands,
        }
        atomic.write_json(self.config_path, {**self.meta, "config": config.to_dict()})


def check_new_run_folder(path: str | Path) -> Path:
    """``path`` if a new run may be made there: not a file, not a folder holding a run."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GanscopeError(f"--out {path} is a file, not a folder")
    if (path / CONFIG_FILE).exists():
        raise GanscopeError(
            f"{path} already holds a run; continue it with: ganscope train --resume {path}, "
            "or choose another --out"
        )
    return path


def create_run(path: str | Path, config: RunConfig, command: list[str] | None = None) -> Run:
    """Make a new run folder; refuses one that already holds a run."""
    path = check_new_run_folder(path)
    try:
        for sub in (CHECKPOINT_DIR, SAMPLES_DIR, FIGURES_DIR):
            (path / sub).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GanscopeError(f"cannot create run folder {path} ({error.strerror})") from None
    run = Run(path, config, {})
    run.save_config(config, command)
    return run


def load_run(path: str | Path) -> Run:
    """Open an existing run folder (or ``pretrained:NAME``, the user's copy of a shipped
    run). Everything later (sample, evaluate, report) starts here."""
    path = pretrained.resolve(path)
    if path.exists() and not path.is_dir():
        raise GanscopeError(f"{path} is a file, not a run folder")
    if not path.is_dir():
        raise GanscopeError(f"run folder {path} does not exist")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise GanscopeError(f"{path} is not a ganscope run folder (it has no {CONFIG_FILE})")
    raw = atomic.read_json(config_path)
    if not isinstance(raw, dict) or "config" not in raw:
        raise GanscopeError(f"{config_path} is not a ganscope run config")
    if raw.get("format_version") != FORMAT_VERSION:
        raise GanscopeError(
            f"{path} was written in run format {raw.get('format_version')}, this ganscope "
            f"reads {FORMAT_VERSION}"
        )
    config = RunConfig.from_dict(raw["config"])
    meta = {key: value for key, value in raw.items() if key != "config"}
    return Run(path, config, meta)
