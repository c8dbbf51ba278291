"""A sweep's search space: the TOML file ``ganscope sweep`` reads (docs/sweep.md), checked
whole before anything runs.

```toml
[study]
model = "mlp"            # the family, and the preset every trial starts from
preset = "seed"
epochs = 3               # per trial; --eval-every 1 gives the pruner its curve
trials = 16
sampler = "tpe"          # tpe, grid (every parameter needs choices) or random
objectives = ["fid"]     # evaluation metrics (or seconds_per_epoch); two: a Pareto front
pruner = "median"        # median, hyperband or none

[params]                 # any TrainConfig field, checked as its flag is
lr = { low = 1e-4, high = 1e-3, log = true }
batch_size = { choices = [32, 64] }

# or, instead of [params], named recipes compared on a grid (with [study] seeds = [0, 1, 2]:
# every recipe on every seed); the trial's parameter is then "point" (and "seed")
# [points]
# ema = { ema = 0.999 }
# r1 = { r1_gamma = 1.0 }

[confirm]                # the best K rerun on fresh seeds, evaluated on n samples
top = 2
seeds = [1, 2, 3]
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .errors import GanscopeError
from .metrics import METRICS
from .presets import PRESETS, with_preset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SAMPLERS = ("tpe", "grid", "random")
PRUNERS = ("median", "hyperband", "none")
#: Objectives beyond the evaluation metrics, with their direction.
TIMING = {"seconds_per_epoch": "minimize"}
#: Study settings and their defaults; the trials' settings are [params].
STUDY = {
    "model": "mlp", "preset": "seed", "epochs": 3, "trials": 16, "sampler": "tpe",
    "sampler_seed": 0, "objectives": ["fid"], "objective_epoch": 0, "pruner": "median",
    "seed": 0, "seeds": [], "eval_every": 1, "eval_samples": 2000, "limit": 0, "threads": 0,
    "data_dir": "", "device": "auto", "precision": "auto",
}  # fmt: skip
CONFIRM = {"top": 0, "seeds": [1, 2, 3], "n": 10000}
#: TrainConfig fields the study itself sets: not searchable.
FIXED = ("epochs", "seed", "eval_every", "eval_samples", "device", "tensorboard", "log_every")


def _directions() -> dict[str, str]:
    found = {m.name: "maximize" if m.higher_is_better else "minimize" for m in METRICS
             if m.higher_is_better is not None}  # fmt: skip
    return {**found, **TIMING}


@dataclass(frozen=True)
class Param:
    name: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def suggest(self, trial: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)


@dataclass(frozen=True)
class Space:
    """A checked space; ``study`` and ``confirm`` hold the TOML's tables with defaults."""

    study: dict[str, Any]
    params: dict[str, Param]
    confirm: dict[str, Any]
    points: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name in STUDY:
            return self.study[name]
        if name.startswith("confirm_") and name[8:] in CONFIRM:
            return self.confirm[name[8:]]
        raise AttributeError(name)

    @property
    def objectives(self) -> list[tuple[str, str]]:
        directions = _directions()
        return [(name, directions[name]) for name in self.study["objectives"]]

    def sort_key(self, values: list[float] | None) -> float:
        """Best first by the first objective."""
        if not values:
            return float("inf")
        return values[0] if self.objectives[0][1] == "minimize" else -values[0]

    def config(self, params: dict[str, Any], seed: int | None = None) -> RunConfig:
        """A trial's run config: the preset, then the study's settings, then the trial's
        (a named point's values for ``point``); ``seed`` (the confirmation's) overrides the
        trial's seed."""
        params = dict(params)
        trial_seed = params.pop("seed", self.seed)
        seed = trial_seed if seed is None else seed
        if "point" in params:
            point = self.points[params.pop("point")]
            params = {**params, **point}
        train = with_preset(TrainConfig(preset=self.preset), self.model, ())
        fixed = {"epochs": self.epochs, "seed": seed, "eval_every": self.eval_every,
                 "eval_samples": self.eval_samples, "device": self.device,
                 "precision": self.study["precision"]}  # fmt: skip
        train = dataclasses.replace(train, **{**fixed, **params})
        data = DataConfig(limit=self.limit or None, data_dir=self.data_dir or None)
        return RunConfig(data=data, model=ModelConfig(self.model), train=train).validate()

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {name: param.suggest(trial) for name, param in self.grid_params().items()}

    def grid_params(self) -> dict[str, Param]:
        """The trial's parameters: [params], or ``point`` over [points]; and ``seed`` where
        the study names seeds."""
        found = dict(self.params)
        if self.points:
            found["point"] = Param("point", choices=tuple(self.points))
        if self.study["seeds"]:
            found["seed"] = Param("seed", choices=tuple(self.study["seeds"]))
        return found

    def sampler(self) -> Any:
        import optuna  # optional: pip install 'ganscope[sweep]'

        if self.sampler_name == "grid":
            grid = {name: list(param.choices) for name, param in self.grid_params().items()}
            return optuna.samplers.GridSampler(grid, seed=self.sampler_seed)
        if self.sampler_name == "random":
            return optuna.samplers.RandomSampler(seed=self.sampler_seed)
        return optuna.samplers.TPESampler(seed=self.sampler_seed)

    @property
    def sampler_name(self) -> str:
        return self.study["sampler"]

    def pruner(self) -> Any:
        import optuna  # optional: pip install 'ganscope[sweep]'

        if self.study["pruner"] == "none" or len(self.objectives) > 1:
            return optuna.pruners.NopPruner()
        if self.study["pruner"] == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=self.epochs)
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "confirm": self.confirm, "points": self.points,
                "params": {n: dataclasses.asdict(p) for n, p in self.params.items()}}  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=list)

    def digest(self) -> str:
        """What identifies the space (its checked content, not its file's spelling)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Space:
        raw = json.loads(text)
        params = {
            n: Param(**{**p, "choices": tuple(p["choices"])}) for n, p in raw["params"].items()
        }
        return cls({**STUDY, **raw["study"]}, params, raw["confirm"], raw.get("points", {}))


def read_space(path: str | Path) -> Space:
    """The space in the TOML file ``path``, checked: one line for the first mistake."""
    path = Path(path)
    if not path.is_file():
        raise GanscopeError(f"space file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise GanscopeError(f"{path} is not TOML ({error})") from None
    return parse_space(raw, str(path))


def parse_space(raw: dict[str, Any], where: str = "the space") -> Space:
    unknown = set(raw) - {"study", "params", "confirm", "points"}
    if unknown:
        raise GanscopeError(
            f"{where}: unknown table(s) {sorted(unknown)}; use study, params or points, confirm"
        )
    study = _table(raw.get("study", {}), STUDY, f"{where} [study]")
    confirm = _table(raw.get("confirm", {}), CONFIRM, f"{where} [confirm]")
    _check_study(study, where)
    params = {
        name: _param(name, spec, study, where) for name, spec in raw.get("params", {}).items()
    }
    points = _points(raw.get("points", {}), study, where)
    if bool(params) == bool(points):
        raise GanscopeError(
            f"{where}: name the settings to search in [params], or named recipes in [points] "
            "(one of the two)"
        )
    if points and study["sampler"] != "grid":
        raise GanscopeError(f'{where}: [points] are compared on a grid: sampler = "grid"')
    space = Space(study, params, confirm, points)
    if study["sampler"] == "grid" and any(not p.choices for p in params.values()):
        raise GanscopeError(f"{where}: the grid sampler needs choices for every parameter")
    if confirm["top"] < 0 or confirm["n"] < 10 or not confirm["seeds"]:
        raise GanscopeError(f"{where} [confirm]: top >= 0, n >= 10 and at least one seed")
    used = set(study["seeds"] or [study["seed"]])
    if confirm["top"] and used & set(confirm["seeds"]):
        raise GanscopeError(
            f"{where} [confirm]: seeds must be fresh, not the study's {sorted(used)}"
        )
    return space


def _points(raw: Any, study: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """[points]: name -> the TrainConfig values of that recipe, each checked as its flag is."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise GanscopeError(f"{where}: [points] holds tables: name = {{ field = value, ... }}")
    for name, values in raw.items():
        for field, value in values.items():
            _searchable(field, f"{where}: [points] {name}:")
            _check_value(field, value, study, f"{where}: [points] {name}:")
    return {name: dict(values) for name, values in raw.items()}


def _table(values: Any, defaults: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise GanscopeError(f"{where} is not a table")
    unknown = set(values) - set(defaults)
    if unknown:
        raise GanscopeError(
            f"{where}: unknown setting(s) {sorted(unknown)}; known: {', '.join(defaults)}"
        )
    for key, value in values.items():
        default = defaults[key]
        if type(value) is not type(default) and not (
            isinstance(default, float) and isinstance(value, int)
        ):
            raise GanscopeError(f"{where}: {key} = {value!r} should be a {type(default).__name__}")
    return {**defaults, **values}


def _check_study(study: dict[str, Any], where: str) -> None:
    if study["sampler"] not in SAMPLERS or study["pruner"] not in PRUNERS:
        raise GanscopeError(
            f"{where}: sampler is one of {', '.join(SAMPLERS)}, pruner one of {', '.join(PRUNERS)}"
        )
    if study["preset"] not in PRESETS:
        raise GanscopeError(f"{where}: unknown preset {study['preset']!r}")
    directions = _directions()
    bad = [name for name in study["objectives"] if name not in directions]
    if bad or not 1 <= len(study["objectives"]) <= 2:
        raise GanscopeError(
            f"{where}: objectives are one or two of {', '.join(sorted(directions))}; "
            f"got {study['objectives']}"
        )
    if (
        study["trials"] < 1
        or study["epochs"] < 1
        or not 0 <= study["objective_epoch"] <= study["epochs"]
        or not 1 <= study["eval_every"] <= study["epochs"]
    ):
        raise GanscopeError(
            f"{where}: trials and epochs at least 1, objective_epoch within 0..epochs, "
            "eval_every within 1..epochs"
        )
    if not all(isinstance(seed, int) and 0 <= seed < 2**63 for seed in study["seeds"]):
        raise GanscopeError(f"{where}: seeds are whole numbers from 0, got {study['seeds']}")
    base = TrainConfig(device=study["device"], precision=study["precision"])
    try:
        base.validate()
    except GanscopeError as error:
        raise GanscopeError(f"{where}: {error}") from None
    ModelConfig(study["model"]).validate()


def _searchable(name: str, where: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if name not in fields or name in FIXED or fields[name].metadata.get("mechanics"):
        searchable = sorted(
            n for n in fields if n not in FIXED and not fields[n].metadata.get("mechanics")
        )
        raise GanscopeError(
            f"{where} {name} is not a setting a trial may change; choose from "
            f"{', '.join(searchable)}"
        )


def _param(name: str, spec: Any, study: dict[str, Any], where: str) -> Param:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    _searchable(name, f"{where}: [params]")
    if not isinstance(spec, dict) or not (set(spec) <= {"choices", "low", "high", "log", "step"}):
        raise GanscopeError(
            f"{where}: [params] {name} takes choices = [...] or low/high (log, step)"
        )
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise GanscopeError(f"{where}: [params] {name} has empty choices")
        for value in choices:
            _check_value(name, value, study, f"{where}: [params]")
        return Param(name, choices=tuple(choices))
    if "low" not in spec or "high" not in spec or not spec["low"] < spec["high"]:
        raise GanscopeError(f"{where}: [params] {name} needs low < high (or choices)")
    default = fields[name].default
    if isinstance(default, bool) or isinstance(default, str):
        raise GanscopeError(f"{where}: [params] {name} is not a number: give choices")
    for value in (spec["low"], spec["high"]):
        _check_value(name, value, study, f"{where}: [params]")
    return Param(name, low=spec["low"], high=spec["high"], log=bool(spec.get("log")),
                 step=spec.get("step"), integer=isinstance(default, int))  # fmt: skip


def _check_value(name: str, value: Any, study: dict[str, Any], where: str) -> None:
    """The same check the flag gets: TrainConfig.validate on the preset with this value."""
    base = with_preset(TrainConfig(preset=study["preset"]), study["model"], ())
    try:
        dataclasses.replace(base, **{name: value}).validate()
    except GanscopeError as error:
        raise GanscopeError(f"{where} {name} = {value!r}: {error}") from None
    except TypeError:
        raise GanscopeError(f"{where} {name} = {value!r} has the wrong type") from None
