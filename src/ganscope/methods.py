"""Which direction makes a sneaker? Latent-direction methods scored on one table.

``ganscope analyze RUN --compare-methods``. For every target class and every method (the best
single dimension, the best SeFa direction, the best GANSpace direction, the classifier
boundary and the boundary with its nearest class projected out), the method's best direction
towards the class is **chosen** on the analysis's base vectors (the analysis's seed: its rows
already hold every direction's class distribution at -delta and +delta) and **scored** on
fresh base vectors of another seed, so the choice never sees the scores. The boundaries were
fitted on a third seed. Every direction is a unit vector in z, so edits of one length are
comparable; scores at each length of a sweep, with 95% bootstrap intervals over the base
vectors:

* ``flip``: among base images the classifier does not call the target, the share it calls
  the target after the edit (a do-nothing edit scores 0);
* ``gain``: mean rise of the target's probability;
* ``side_tv``: total variation of the other classes' probabilities, 0.5 * sum |change|;
  ``off_target``: the probability the other classes gain (what the edit moves elsewhere);
* ``keep_change``: change of the nearest class's probability (the class the conditional
  boundary keeps), and ``keep_leave``: the share of base images of that class that leave it;
* ``fid`` / ``fid_drift``: FID of the edited images against the test set in the classifier's
  feature space, and its change from the unedited images' FID (same base vectors, same n);
* ``path_step``: mean distance in that feature space between consecutive images of the edit
  path through the sweep's lengths up to this one (a perceptual path length in the shipped
  classifier's space; LPIPS's weights cannot be shipped with ganscope).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import atomic
from . import progress as report_progress
from .boundaries import Boundary, nearest_class, towards
from .checks import check_class
from .classifier import features_and_probabilities, load_classifier
from .data import load_split, to_model_range, to_uint8
from .directions import Direction, closed_form_directions, interval95, paired_mean
from .errors import GanscopeError
from .metrics import frechet_from_moments, moments, psd_root
from .plots import labelled_grid, save_png
from .readings import is_complete
from .runs import AnalysisFiles, Run
from .sampling import generate, latent, z_dim_of

#: The methods, in the table's order: key and name.
METHODS = (
    ("dims", "best dimension"),
    ("sefa", "SeFa"),
    ("pca", "GANSpace"),
    ("boundary", "boundary"),
    ("conditional", "boundary, keeping nearest"),
)
METHOD_NAME = dict(METHODS)
#: Bootstrap resamples of each FID interval (each is one eigen-decomposition).
FID_BOOTSTRAP = 100


@dataclass(frozen=True)
class Readings:
    """The classifier's reading of one image set: features ``(N, 128)``, probabilities
    ``(N, C)``."""

    features: torch.Tensor
    probs: torch.Tensor

    @property
    def predicted(self) -> torch.Tensor:
        return self.probs.argmax(dim=1)


def read_images(
    generator: nn.Module, classifier: nn.Module, z: torch.Tensor, batch_size: int = 256
) -> Readings:
    """G's images for ``z``, stored as uint8 (as ``evaluate`` reads samples), then read."""
    pixels = to_uint8(generate(generator, z, batch_size))
    return Readings(*features_and_probabilities(classifier, to_model_range(pixels), batch_size))


def choose(rows: Sequence[dict[str, Any]], target: int, vectors: dict[str, torch.Tensor]
           ) -> tuple[Direction, float] | None:  # fmt: skip
    """The direction (with its sign) of ``rows`` whose shift raises class ``target``'s mean
    probability most on the rows' base vectors, and that rise; None without rows."""
    best = None
    for row in rows:
        base = row["base_distribution"][target]
        for sign, side in ((1.0, "plus"), (-1.0, "minus")):
            gain = row[f"{side}_distribution"][target] - base
            if best is None or gain > best[2]:
                best = (row["direction"], sign, gain)
    if best is None:
        return None
    name, sign, gain = best
    return Direction(f"{'+' if sign > 0 else '-'}{name}", sign * vectors[name]), gain


def _flip(before: torch.Tensor, after: torch.Tensor, target: int, boot: torch.Tensor):
    """Share of images not of ``target`` before that are after, with its interval."""
    eligible = (before != target).double()
    flipped = (after == target).double() * eligible
    if eligible.sum() == 0:
        return None, None
    resampled = flipped[boot].sum(1) / eligible[boot].sum(1).clamp(min=1)
    return float(flipped.sum() / eligible.sum()), interval95(resampled)


def fids(
    edits: dict[float, Readings], real: tuple, boot: torch.Tensor, main: float
) -> dict[float, tuple[float, list[float] | None]]:
    """FID of each edit's features against the real moments; at the ``main`` length also a
    bootstrap interval (``FID_BOOTSTRAP`` resamples: each is an eigen-decomposition)."""
    found: dict[float, tuple[float, list[float] | None]] = {}
    for length, edit in edits.items():
        value = frechet_from_moments(*moments(edit.features), *real)
        interval = None
        if length == main:
            resampled = [frechet_from_moments(*moments(edit.features[b]), *real)
                         for b in boot[:FID_BOOTSTRAP]]  # fmt: skip
            interval = interval95(torch.tensor(resampled))
        found[length] = (value, interval)
    return found


def score(
    base: Readings,
    edits: dict[float, Readings],
    target: int,
    keep: int | None,
    real: tuple,
    boot: torch.Tensor,
    edit_fids: dict[float, tuple[float, list[float] | None]] | None = None,
) -> list[dict[str, Any]]:
    """One row per edit length of ``edits`` (length -> readings of the edited base vectors):
    the scores of the module docstring for an edit towards class ``target``; ``real``: the
    test set's feature moments (:func:`metrics.moments`, optionally with the covariance's
    :func:`metrics.psd_root`), ``boot``: bootstrap indices,
    ``edit_fids``: :func:`fids` of ``edits`` when already computed (intervals at the longest
    length when not)."""
    others = [c for c in range(base.probs.shape[1]) if c != target]
    edit_fids = edit_fids or fids(edits, real, boot, max(edits))
    base_fid = frechet_from_moments(*moments(base.features), *real)
    rows, previous, steps = [], base.features, []
    for length in sorted(edits):
        edit = edits[length]
        change = edit.probs - base.probs  # (N, C)
        steps.append((edit.features - previous).norm(dim=1))
        previous = edit.features
        flip, flip_ci = _flip(base.predicted, edit.predicted, target, boot)
        gain, gain_ci = paired_mean(change[:, target], boot)
        side, side_ci = paired_mean(0.5 * change[:, others].abs().sum(1), boot)
        off, off_ci = paired_mean(change[:, others].clamp(min=0).sum(1), boot)
        path, path_ci = paired_mean(torch.stack(steps).mean(0), boot)
        fid, fid_ci = edit_fids[length]
        row = {
            "length": length, "flip": flip, "flip_ci": flip_ci, "gain": gain,
            "gain_ci": gain_ci, "side_tv": side, "side_tv_ci": side_ci, "off_target": off,
            "off_target_ci": off_ci, "fid": fid, "fid_ci": fid_ci, "base_fid": base_fid,
            "fid_drift": fid - base_fid, "path_step": path, "path_step_ci": path_ci,
            "keep": keep, "keep_change": None, "keep_change_ci": None, "keep_leave": None,
        }  # fmt: skip
        if keep is not None:
            row["keep_change"], row["keep_change_ci"] = paired_mean(change[:, keep], boot)
            was = base.predicted == keep
            if bool(was.any()):
                row["keep_leave"] = float((edit.predicted[was] != keep).double().mean())
        rows.append(row)
    return rows


def candidates(generator: nn.Module, record: dict[str, Any]) -> dict[str, tuple[list, dict]]:
    """Per method the analysis has rows for: its rows at the analysis's delta and its
    directions' vectors by name (SeFa's and GANSpace's recomputed exactly as analysed)."""
    main = record["deltas"][0]
    dim_rows = [r for r in record["rows"] if r["delta"] == main and r["dim"] is not None]
    eye = torch.eye(z_dim_of(generator))
    found = {"dims": (dim_rows, {r["direction"]: eye[r["dim"]] for r in dim_rows})}
    for kind in ("sefa", "pca"):
        rows = record.get(f"{kind}_rows") or []
        if rows:
            computed = closed_form_directions(kind, generator, len(rows), record["seed"])
            found[kind] = (rows, {d.name: d.vector for d in computed})
    return found


def method_directions(
    found: dict[str, tuple[list, dict]], boundaries: Sequence[Boundary], target: int
) -> dict[str, tuple[Direction, float | None]]:
    """Each method's direction towards ``target``: among ``found`` (:func:`candidates`) the
    one chosen on the analysis's base vectors, with the rise it gave there; the boundary and
    the conditional boundary (keeping the nearest class)."""
    chosen = {kind: choose(rows, target, vectors) for kind, (rows, vectors) in found.items()}
    chosen = {kind: pick for kind, pick in chosen.items() if pick is not None}
    plain = towards(boundaries, target)
    if plain is not None:
        chosen["boundary"] = (plain, None)
        nearest = nearest_class(boundaries, target)
        if nearest is not None:
            chosen["conditional"] = (towards(boundaries, target, [nearest]), None)
    return chosen


def compare(
    generator: nn.Module,
    classifier: nn.Module,
    record: dict[str, Any],
    boundaries: Sequence[Boundary],
    real_features: torch.Tensor,
    options: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score every method towards every class (see the module docstring): the rows, and the
    base vectors' readings and directions the figure needs. ``options``: ``AnalyzeOptions``."""
    classes = [b.name for b in boundaries]
    seed = record["seed"] + 2 if options.compare_seed is None else options.compare_seed
    if seed in (record["seed"], record["seed"] + 1):
        raise GanscopeError(
            f"--compare-seed {seed} is the analysis's or the boundaries' seed; the scores "
            "must come from other base vectors"
        )
    z = latent(options.compare_n, z_dim_of(generator), seed)
    base = read_images(generator, classifier, z, options.batch_size)
    mean, cov = moments(real_features)
    real = (mean, cov, psd_root(cov))  # with the covariance's root: many FIDs against it
    boot_rng = torch.Generator().manual_seed(seed)
    boot = torch.randint(0, len(z), (options.bootstrap, len(z)), generator=boot_rng)
    found = candidates(generator, record)
    cache: dict[str, tuple[dict[float, Readings], dict]] = {}
    rows, chosen = [], {}
    wanted = sorted({check_class(c, tuple(classes)) for c in options.towards})
    wanted = wanted or list(range(len(classes)))
    targets = report_progress.bar(wanted, desc="classes", enabled=options.progress)
    for target in targets:
        keep = nearest_class(boundaries, target)
        for method, (direction, selection_gain) in method_directions(
            found, boundaries, target
        ).items():
            chosen[(target, method)] = direction
            if direction.name not in cache:
                edited = torch.cat([z + length * direction.vector for length in options.lengths])
                readings = read_images(generator, classifier, edited, options.batch_size)
                parts = zip(readings.features.split(len(z)), readings.probs.split(len(z)))
                edits = {length: Readings(*part) for length, part in zip(options.lengths, parts)}
                cache[direction.name] = (edits, fids(edits, real, boot, record["deltas"][0]))
            edits, edit_fids = cache[direction.name]
            for row in score(base, edits, target, keep, real, boot, edit_fids):
                keep_class = None if keep is None else classes[keep]
                rows.append({
                    "class": classes[target], "class_index": target, "method": method,
                    "direction": direction.name, "selection_gain": selection_gain,
                    "keep_class": keep_class, **row,
                })  # fmt: skip
    return rows, {"base": base, "z": z, "directions": chosen, "seed": seed, "targets": wanted}


#: The columns of ``methods.csv`` (intervals as ``low..high``).
CSV_FIELDS = ("class", "method", "direction", "length", "flip", "flip_ci", "gain", "gain_ci",
              "side_tv", "side_tv_ci", "off_target", "off_target_ci", "keep_class",
              "keep_change", "keep_change_ci", "keep_leave", "fid", "fid_ci", "base_fid",
              "fid_drift", "path_step", "path_step_ci", "selection_gain")  # fmt: skip


def _cell(value: Any, digits: int = 4) -> str:
    if isinstance(value, list):
        return f"{value[0]:.{digits}f}..{value[1]:.{digits}f}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    writer.writerows([[_cell(row[k]) for k in CSV_FIELDS] for row in rows])
    return buffer.getvalue()


def winners(rows: Sequence[dict[str, Any]], length: float) -> list[dict[str, Any]]:
    """Per class, the row with the highest flip rate at ``length`` (ties: the smaller side
    effect)."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["length"] != length or row["flip"] is None:
            continue
        current = best.get(row["class"])
        if current is None or (row["flip"], -row["side_tv"]) > (
            current["flip"],
            -current["side_tv"],
        ):
            best[row["class"]] = row
    return list(best.values())


def _ci(row: dict[str, Any], key: str, digits: int = 2) -> str:
    if row[key] is None:
        return "–"
    low, high = row[f"{key}_ci"]
    return f"{row[key]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def markdown(rows: Sequence[dict[str, Any]], length: float, header: dict[str, Any]) -> str:
    """The table at ``length`` in Markdown: per class and method, then the winners."""
    lines = [
        f"# Directions towards each class, scored (edit length {length:g} in z)",
        "",
        f"Run {header['run']}, epoch {header['epoch']}; chosen on the analysis's {header['n']} "
        f"base vectors (seed {header['seed']}), scored on {header['compare_n']} fresh ones "
        f"(seed {header['compare_seed']}); boundaries fitted on {header['boundary_n']} vectors "
        f"(seed {header['seed'] + 1}). 95% bootstrap intervals. Unedited FID at this n: "
        f"{rows[0]['base_fid']:.2f}."
        if rows
        else "",
        "",
        "| class | method | direction | flip rate ↑ | target gain ↑ | side effect (TV) ↓ | "
        "gained by other classes ↓ | nearest class: change | FID drift ↓ | path step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in rows if r["length"] == length):
        keep = (
            "–" if row["keep_class"] is None else f"{row['keep_class']}: {_ci(row, 'keep_change')}"
        )
        lines.append(
            f"| {row['class']} | {METHOD_NAME[row['method']]} | {row['direction']} | "
            f"{_ci(row, 'flip')} | {_ci(row, 'gain')} | {_ci(row, 'side_tv')} | "
            f"{_ci(row, 'off_target')} | {keep} | "
            f"{row['fid_drift']:+.2f} [{row['fid_ci'][0] - row['base_fid']:+.2f}, "
            f"{row['fid_ci'][1] - row['base_fid']:+.2f}] | {_ci(row, 'path_step', 3)} |"
        )
    lines += [
        "",
        "| class | best on flip rate | flip rate | side effect (TV) | gained by other classes |",
        "|---|---|---|---|---|",
    ]
    for row in winners(rows, length):
        lines.append(
            f"| {row['class']} | {METHOD_NAME[row['method']]} ({row['direction']}) | "
            f"{row['flip']:.2f} | {row['side_tv']:.2f} | {row['off_target']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def figure(generator: nn.Module, found: dict[str, Any], classes: Sequence[str], length: float):
    """Rows: classes; columns: unedited, then each method; per row the first base image the
    classifier does not call that class, edited by every method by ``length``."""
    methods = [m for m, _ in METHODS if any(k[1] == m for k in found["directions"])]
    z, predicted = found["z"], found["base"].predicted
    cells = []
    targets = found["targets"]
    for target in targets:
        others = (predicted != target).nonzero()
        base = z[int(others[0]) if len(others) else 0]
        row = [base]
        for method in methods:
            direction = found["directions"].get((target, method))
            row.append(base if direction is None else base + length * direction.vector)
        cells.append(torch.stack(row))
    pixels = to_uint8(generate(generator, torch.cat(cells)))
    pixels = pixels.view(len(targets), len(methods) + 1, 28, 28)
    short = {"dims": "dimension", "conditional": "keeping nearest"}
    names = ", ".join(["unedited"] + [short.get(m, METHOD_NAME[m]) for m in methods])
    title = f"length {length:g}: {names}"
    return labelled_grid(pixels, [classes[t] for t in targets], title, scale=3)


def _checked_record(run: Run, folder: Path, opts: Any) -> dict[str, Any]:
    path = AnalysisFiles(folder).record
    record = atomic.read_json(path) if path.is_file() else None
    if run.config.model.conditional:
        raise GanscopeError(
            f"{run.path} is a conditional run: its class is its label, so there are no "
            "directions towards a class in z to compare"
        )
    if not is_complete(record):
        raise GanscopeError(
            f"--compare-methods needs a finished analysis in {folder}: run "
            f"`ganscope analyze {run.path}` first"
        )
    if not record.get("boundaries"):
        raise GanscopeError(
            f"the analysis in {folder} has no classifier boundaries (made before they existed "
            f"or with --boundary-n 0): run `ganscope analyze {run.path} --overwrite` again"
        )
    if record["deltas"][0] not in opts.lengths:
        raise GanscopeError(
            f"--length must include the analysis's delta {record['deltas'][0]:g}, got "
            f"{', '.join(f'{v:g}' for v in opts.lengths)}"
        )
    return record


def compare_run(run: Run, opts: Any) -> dict[str, Any]:
    """``ganscope analyze RUN --compare-methods``: score the methods on the run's analysis
    (``opts``: ``AnalyzeOptions``) and write ``methods.csv``, ``.md``, ``.png`` and, last,
    ``methods.json`` beside it. Returns the record with the Markdown and the paths."""
    started = time.perf_counter()
    folder = Path(opts.out) if opts.out else run.analysis_dir
    record = _checked_record(run, folder, opts)
    generator, epoch = run.generator_at(record["epoch"], opts.device)
    classifier = load_classifier(opts.classifier_path, device=opts.device)
    if classifier.meta["sha256"] != record["classifier_sha256"]:
        raise GanscopeError(f"the analysis in {folder} used another classifier; analyse again")
    data_dir = opts.data_dir or run.config.data.data_dir
    test = load_split(run.config.data.dataset, "test", data_dir, progress=opts.progress)
    real = features_and_probabilities(classifier, to_model_range(test.images), opts.batch_size)[0]
    boundaries = [Boundary.from_record(entry) for entry in record["boundaries"]]
    report_progress.say(f"scoring the direction methods towards {len(boundaries)} classes",
                        enabled=opts.progress)  # fmt: skip
    rows, found = compare(generator, classifier, record, boundaries, real, opts)
    main = record["deltas"][0]
    header = {key: record[key] for key in ("run", "model", "epoch", "n", "seed",
                                           "classifier_sha256", "boundary_n")}  # fmt: skip
    header |= {"compare_n": opts.compare_n, "compare_seed": found["seed"],
               "lengths": list(opts.lengths), "length": main}  # fmt: skip
    text = markdown(rows, main, header)
    files = AnalysisFiles(folder)
    paths = [
        atomic.write_bytes(files.table("methods"), rows_to_csv(rows).encode()),
        atomic.write_bytes(files.table("methods", ".md"), text.encode()),
        save_png(figure(generator, found, [b.name for b in boundaries], main),
                 files.table("methods", ".png")),
    ]  # fmt: skip
    result = {**header, "seconds": round(time.perf_counter() - started, 2), "rows": rows,
              "winners": winners(rows, main)}  # fmt: skip
    paths.append(atomic.write_json(files.table("methods", ".json"), result))
    return {**result, "markdown": text, "paths": [str(p) for p in paths]}
