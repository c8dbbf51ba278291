"""``ganscope import``: a run folder for a generator trained elsewhere (docs/import.md).

Every file is opened and probed before anything is written: a batch of standard-normal z
goes in, and the output must be one-channel 28x28 images in the declared range, finite, for
the declared z_dim. Only then is the run folder made, in a hidden folder beside ``--out``
renamed into place at the end, so a refusal (one line, exit 2) leaves nothing behind.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checks import Checked, resolve
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, option
from .data import get_dataset, to_uint8
from .errors import GanscopeError
from .foreign import (
    IMPORT_DIR,
    Adapter,
    file_metadata,
    onnx_inputs,
    open_file,
    self_contained_onnx,
    sha256,
    stored_path,
)
from .models import CONDITIONINGS, turn_labels
from .plots import save_grid
from .runs import Run, check_new_run_folder, create_run, load_run
from .sampling import generate, latent
from .source import IMPORT_FORMATS, IMPORTED, LATENTS, OUTPUT_RANGES, SourceConfig
from .state import GRID_ROW

#: Latent vectors of the probe batch (seed 0) every file must turn into images.
PROBE = 16
#: How far outside its declared range an output may stray (float rounding).
RANGE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ImportOptions(Checked):
    """a generator trained elsewhere (TorchScript, ONNX, state_dict) as a run folder

    Make a run folder for a generator ganscope did not train, which sample, traverse,
    interpolate, animate (several epochs), evaluate, analyze, serve, report and export then
    read unchanged. The contract (docs/import.md): z of shape (N, z_dim), standard normal
    unless --latent uniform; images (N, 1, 28, 28) or (N, 784) in [-1, 1] (--output-range 0,1
    for a sigmoid). Every file is probed first; a refusal writes nothing.
    """

    out: str | None = option(
        None, "the new run folder (default: runs/NAME, NAME the first file's without suffix)",
        type=str,
    )  # fmt: skip
    format: str = option(
        "auto",
        "the files' format: torchscript, onnx, or state_dict (with --module); auto: .onnx is "
        "ONNX, a TorchScript archive is TorchScript, other files need --format state_dict",
        choices=lambda: ["auto", *IMPORT_FORMATS],
    )
    module: str | None = option(
        None,
        "state_dict: the generator's class as module:Class or path/to/file.py:Class (this "
        "imports that module: it runs the code)",
        type=str,
    )
    class_args: str = option("{}", "state_dict: the class's keyword arguments as JSON")
    epochs: tuple[int, ...] = option(
        (),
        "the epoch of each file, in order (default: a ganscope export's own epoch, else "
        "1, 2, ... in the order given; a quoted glob is sorted)",
        flag="--epoch",
        type=int,
        minimum=1,
    )
    z_dim: int | None = option(
        None,
        "length of z, where the file does not say (ONNX input shapes and ganscope's "
        "exports do; it must match them)",
        type=int,
        minimum=1,
        maximum=4096,
    )
    latent: str = option(
        "normal",
        "the distribution of z the generator was trained on: normal, or uniform in [-1, 1]",
        choices=lambda: list(LATENTS),
    )
    output_range: str = option(
        "-1,1", "the range of the generator's output: -1,1 (tanh) or 0,1 (sigmoid)",
        choices=lambda: list(OUTPUT_RANGES),
    )  # fmt: skip
    dataset: str = option(
        "fashion-mnist", "the data set the images belong to (its classifier measures them)"
    )

    def check(self) -> None:
        get_dataset(self.dataset)
        try:
            args = json.loads(self.class_args)
        except ValueError:
            args = None
        if not isinstance(args, dict):
            raise GanscopeError(f"--class-args must be a JSON object, got {self.class_args!r}")
        if self.module and self.format not in ("auto", "state_dict"):
            raise GanscopeError(f"--module is for a state_dict, not --format {self.format}")


def import_generator(
    files: Sequence[str | Path],
    options: ImportOptions | None = None,
    command: list[str] | None = None,
    **overrides: Any,
) -> Run:
    """Check ``files`` (one generator per epoch) against the contract and make the run folder
    ``options.out`` for them; returns the run."""
    opts = resolve(ImportOptions, options, overrides)
    paths = _expand(files)
    out = check_new_run_folder(opts.out or Path("runs") / paths[0].name.split(".")[0])
    if out.is_dir() and any(out.iterdir()):
        raise GanscopeError(f"--out {out} is a folder that is not empty; choose a new one")
    file_format = _format_of(paths, opts)
    metadata = file_metadata(paths[0], file_format)
    epochs = _epochs(paths, opts, metadata)
    conditioning = _conditioning(metadata, opts.dataset)
    module, module_file = _module(opts, file_format)
    source = SourceConfig(
        format=file_format, files=tuple(p.name for p in paths),
        sha256=tuple(sha256(p) for p in paths), epochs=epochs, module=module,
        class_args=opts.class_args if file_format == "state_dict" else "{}",
        latent=opts.latent, output_range=opts.output_range,
        producer=metadata.get("producer", ""),
    )  # fmt: skip
    base = module_file.parent if module_file else None
    num_classes = len(get_dataset(opts.dataset).classes) if conditioning != "none" else 0
    opened = [open_file(path, source, 0, num_classes, base) for path in paths]
    z_dim = _z_dim(paths[0], file_format, metadata, opts, opened[0])
    config = RunConfig(
        data=DataConfig(dataset=opts.dataset),
        model=ModelConfig(name=IMPORTED, z_dim=z_dim, conditioning=conditioning),
        train=TrainConfig(epochs=max(epochs)),
        source=source,
    ).validate()
    for generator in opened:
        generator.z_dim = z_dim
    generators = {
        epoch: _probe(generator, path, source)
        for epoch, path, generator in zip(epochs, paths, opened)
    }
    return _write(out, config, paths, module_file, generators, command)


def _expand(files: Sequence[str | Path]) -> list[Path]:
    """The files, a quoted glob expanded in sorted order; each must be a file."""
    paths: list[Path] = []
    for name in map(str, files):
        matches = sorted(glob.glob(name)) if glob.has_magic(name) else [name]
        if not matches:
            raise GanscopeError(f"no file matches {name}")
        paths.extend(Path(match) for match in matches)
    if not paths:
        raise GanscopeError("give at least one generator file to import")
    for path in paths:
        if not path.is_file():
            raise GanscopeError(f"{path} does not exist or is not a file")
    return paths


def _format_of(paths: list[Path], opts: ImportOptions) -> str:
    if opts.format != "auto":
        return opts.format
    if opts.module:
        return "state_dict"
    formats = {_sniff(path) for path in paths}
    if len(formats) > 1:
        raise GanscopeError("the files are of different formats; import one format at a time")
    return formats.pop()


def _sniff(path: Path) -> str:
    """A file's format from its name and first bytes."""
    if path.suffix.lower() == ".onnx":
        return "onnx"
    with path.open("rb") as stream:
        head = stream.read(4)
    if head[:2] == b"PK":  # a zip archive: TorchScript, or torch.save's format
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("/code/__torch__.py") or "/code/" in name
                   for name in archive.namelist()):  # fmt: skip
                return "torchscript"
        raise GanscopeError(
            f"{path} is a torch.save file, not TorchScript: if it holds a state_dict, import "
            "it with --module module:Class (its generator class)"
        )
    raise GanscopeError(
        f"{path} is not a model ganscope can read (TorchScript, ONNX, or a state_dict with "
        "--module); say which with --format"
    )


def _epochs(paths: list[Path], opts: ImportOptions, metadata: dict[str, str]) -> tuple[int, ...]:
    if opts.epochs:
        if len(opts.epochs) != len(paths):
            raise GanscopeError(
                f"--epoch gives {len(opts.epochs)} epoch(s) for {len(paths)} file(s); give one "
                "per file"
            )
        if len(set(opts.epochs)) != len(opts.epochs):
            raise GanscopeError(f"--epoch values must differ, got {list(opts.epochs)}")
        return opts.epochs
    if len(paths) == 1 and metadata.get("epoch", "").isdigit() and int(metadata["epoch"]) > 0:
        return (int(metadata["epoch"]),)
    return tuple(range(1, len(paths) + 1))


def _conditioning(metadata: dict[str, str], dataset: str) -> str:
    """A ganscope export's conditioning (its classes must be the data set's), else none."""
    conditioning = metadata.get("conditioning", "none")
    if conditioning == "none":
        return "none"
    if conditioning not in CONDITIONINGS:
        raise GanscopeError(f"the file's conditioning {conditioning!r} is not one ganscope knows")
    classes = list(get_dataset(dataset).classes)
    if json.loads(metadata.get("classes", "[]")) != classes:
        raise GanscopeError(f"the file's classes are not those of --dataset {dataset}")
    return conditioning


def _module(opts: ImportOptions, file_format: str) -> tuple[str, Path | None]:
    """The class of a state_dict as stored (a file.py module is kept in the run folder)."""
    if file_format != "state_dict":
        if opts.module:
            raise GanscopeError(f"--module is for a state_dict, not a {file_format} file")
        return "", None
    if not opts.module:
        raise GanscopeError("a state_dict needs its class: --module module:Class or file.py:Class")
    module_name, _, class_name = opts.module.rpartition(":")
    if module_name.endswith(".py"):
        file = Path(module_name).resolve()
        if not file.is_file():
            raise GanscopeError(f"--module {opts.module!r}: {file} does not exist")
        return f"{file.name}:{class_name}", file
    return opts.module, None


def _z_dim(
    path: Path, file_format: str, metadata: dict[str, str], opts: ImportOptions, opened: Adapter
) -> int:
    """z_dim from the file where it says (ganscope's metadata, an ONNX input shape, an integer
    ``z_dim`` attribute of the module), checked against --z-dim, else --z-dim."""
    said = int(metadata["z_dim"]) if metadata.get("z_dim", "").isdigit() else None
    if said is None and file_format == "onnx":
        shape = onnx_inputs(opened.session)[0][2]
        said = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
    attribute = getattr(getattr(opened, "inner", None), "z_dim", None)
    if said is None and isinstance(attribute, int) and not isinstance(attribute, bool):
        said = attribute
    if said is not None and opts.z_dim is not None and said != opts.z_dim:
        raise GanscopeError(f"--z-dim {opts.z_dim} does not match {path}'s z_dim of {said}")
    z_dim = said if said is not None else opts.z_dim
    if z_dim is None:
        raise GanscopeError(f"{path} does not say how long z is; give --z-dim")
    return z_dim


@torch.no_grad()
def _probe(generator: Adapter, path: Path, source: SourceConfig) -> Adapter:
    """The contract checked on a batch: shape, finiteness, range."""
    z = latent(PROBE, generator.z_dim, 0)
    labels = turn_labels(generator, PROBE)
    try:
        raw = generator.raw(z, labels)
    except Exception as error:  # whatever the file's code raises for a wrong input
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise GanscopeError(
            f"{path} does not take z of shape ({PROBE}, {generator.z_dim}): "
            f"{type(error).__name__}: {first}"
        ) from None
    shape = tuple(raw.shape[1:]) if isinstance(raw, torch.Tensor) else None
    if shape not in ((1, 28, 28), (784,)) or raw.shape[0] != PROBE:
        shown = shape if shape is not None else type(raw).__name__
        raise GanscopeError(
            f"{path} makes images of shape {shown}; ganscope reads one-channel 28x28 images, "
            "(N, 1, 28, 28) or (N, 784)"
        )
    if not torch.isfinite(raw).all():
        raise GanscopeError(f"{path} makes NaN or infinite values for standard z")
    low, high = map(float, source.output_range.split(","))
    if raw.min() < low - RANGE_TOLERANCE or raw.max() > high + RANGE_TOLERANCE:
        raise GanscopeError(
            f"{path} makes values in [{raw.min():.3g}, {raw.max():.3g}], outside its declared "
            f"range [{low:g}, {high:g}] (--output-range)"
        )
    return generator


def _write(
    out: Path, config: RunConfig, paths: list[Path], module_file: Path | None,
    generators: dict[int, Adapter], command: list[str] | None,
) -> Run:  # fmt: skip
    """The run folder, made beside ``out`` and renamed into place when whole."""
    out = out.resolve()
    staging = out.parent / f".{out.name}.importing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        run = create_run(staging, config, command)
        folder = staging / IMPORT_DIR
        folder.mkdir()
        for epoch, path in zip(config.source.epochs, paths):
            kept = stored_path(staging, config.source, epoch)
            if config.source.format == "onnx":
                kept.write_bytes(self_contained_onnx(path))
            else:
                shutil.copyfile(path, kept)
        if module_file is not None:
            shutil.copyfile(module_file, folder / module_file.name)
        for epoch, generator in generators.items():
            z = latent(64, config.model.z_dim, 0)
            images = generate(generator, z, labels=turn_labels(generator, 64))
            save_grid(to_uint8(images), run.sample_grid_path(epoch), nrow=GRID_ROW, scale=2)
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise GanscopeError(f"cannot write {out} ({error.strerror})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_run(out)
