"""A trained generator as a file that runs without ganscope: ONNX or TorchScript.

The exported network is the report's generator alone, in eval mode (BatchNorm with its
running statistics), on the CPU, in NCHW layout: input ``z`` ``(batch, z_dim)`` float32, any
batch size (a conditional run's also ``labels`` ``(batch,)`` int64, the class indices); output
``images`` ``(batch, 1, 28, 28)`` float32 in [-1, 1] (``(x + 1) * 127.5`` gives pixel values).
What a user needs to run and trust the file travels inside it: ONNX ``metadata_props`` or a
TorchScript extra file ``ganscope.json`` hold the latent size, the output range (a conditional
run's: its classes) and the provenance (the run's config, the epoch, ganscope's and torch's
versions).

TorchScript is deprecated by PyTorch (2.10+ warns on ``torch.jit.load``); ONNX is the format to
prefer. ONNX needs the optional extra ``pip install 'ganscope[export]'`` (onnx and onnxscript for
torch's exporter; onnxruntime to run the file).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__, atomic
from .data import get_dataset
from .errors import GanscopeError, one_line
from .foreign import TORCHSCRIPT_METADATA, file_metadata, stored_path
from .gallery import output_path
from .models import is_conditional
from .options import ExportOptions
from .runs import Run

INSTALL = "pip install 'ganscope[export]'"
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def metadata(run: Run, epoch: int) -> dict[str, str]:
    """What the exported file says about itself (strings: ONNX metadata is text)."""
    z_input = f"z: float32 (batch, {run.config.model.z_dim}), standard normal"
    conditional = {}
    if run.config.model.conditional:
        classes = get_dataset(run.config.data.dataset).classes
        z_input += f"; labels: int64 (batch,), the class of each image, 0..{len(classes) - 1}"
        conditional = {
            "conditioning": run.config.model.conditioning,
            "classes": json.dumps(list(classes)),
        }
    return {
        "producer": f"ganscope {__version__}",
        "model": run.config.model.name,
        "epoch": str(epoch),
        "input": z_input,
        **conditional,
        "output": "images: float32 (batch, 1, 28, 28) in [-1, 1]; pixels = (x + 1) * 127.5",
        "z_dim": str(run.config.model.z_dim),
        "output_range": "[-1, 1]",
        "dataset": run.config.data.dataset,
        "run": str(run.path),
        "run_config": json.dumps(run.config.to_dict(), sort_keys=True),
        "ganscope_version": __version__,
        "torch_version": torch.__version__,
    }


def export_generator(run: Run, options: ExportOptions) -> dict[str, Any]:
    """Write the generator of ``options.epoch`` (default: the latest) in ``options.format``;
    returns the path and the metadata stored in the file."""
    if options.format == "onnx":
        for package in ("onnx", "onnxscript"):
            if importlib.util.find_spec(package) is None:
                raise GanscopeError(f"--format onnx needs the {package} package: {INSTALL}")
    generator, epoch = run.generator_at(options.epoch, device="cpu")
    if run.imported and run.config.source.format == "onnx":
        kept = stored_path(run.path, run.config.source, epoch)
        raise GanscopeError(
            f"run {run.path} was imported from ONNX and keeps that file, {kept}: use it "
            "(ganscope does not turn ONNX back into a torch module)"
        )
    if run.imported and run.config.source.format == "torchscript" and options.format == "onnx":
        raise GanscopeError(  # torch.export reads nn.Modules, not TorchScript
            f"run {run.path} was imported from TorchScript, which torch's ONNX exporter "
            "cannot read: export it with --format torchscript"
        )
    generator = generator.to(memory_format=torch.contiguous_format).float().eval()
    default = run.export_path(epoch, SUFFIX[options.format])
    path = output_path(run, options.out, default, overwrite=options.overwrite)
    info = metadata(run, epoch)
    example = _example_inputs(generator, run.config.model.z_dim)
    write = _onnx_bytes if options.format == "onnx" else _torchscript_bytes
    try:
        payload = write(generator, example, info)
    except Exception as error:  # the exporters raise many types for a module they cannot read
        if not run.imported:
            raise
        raise GanscopeError(
            f"cannot export {run.path}'s imported generator as {options.format} ({one_line(error)})"
        ) from None
    atomic.write_bytes(path, payload)
    return {"path": str(path), "format": options.format, "metadata": info}


@contextlib.contextmanager
def _quiet_exporter():
    """torch's exporters log and warn about things that do not concern the user (optional
    torchvision operators, deprecations inside torch)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        logger.setLevel(level)


def _example_inputs(generator: nn.Module, z_dim: int) -> dict[str, torch.Tensor]:
    """Inputs to trace with, by name: ``z`` (a batch of 2), and a conditional G's ``labels``."""
    inputs = {"z": torch.zeros(2, z_dim)}
    if is_conditional(generator):
        inputs["labels"] = torch.tensor([0, generator.num_classes - 1])
    return inputs


def _onnx_bytes(
    generator: nn.Module, example: dict[str, torch.Tensor], info: dict[str, str]
) -> bytes:
    import onnx  # optional: pip install 'ganscope[export]'

    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        program = torch.onnx.export(
            generator,
            tuple(example.values()),
            input_names=list(example),
            output_names=["images"],
            dynamic_shapes={name: {0: batch} for name in example},
            dynamo=True,
            verbose=False,
        )
    model = program.model_proto
    model.doc_string = f"{info['model']} GAN generator (epoch {info['epoch']}), by ganscope"
    for key, value in info.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _torchscript_bytes(
    generator: nn.Module, example: dict[str, torch.Tensor], info: dict[str, str]
) -> bytes:
    with _quiet_exporter():
        # Traced at batch 2: every reshape in the report's generators is view(-1, ...), so the
        # trace keeps the batch size free (a test runs it at 1 and 64).
        module = torch.jit.trace(generator, tuple(example.values()))
        buffer = io.BytesIO()
        torch.jit.save(module, buffer, _extra_files={TORCHSCRIPT_METADATA: json.dumps(info)})
    return buffer.getvalue()


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata an exported file holds, ONNX or TorchScript."""
    path = Path(path)
    return file_metadata(path, "onnx" if path.suffix == ".onnx" else "torchscript")
