"""Generators trained elsewhere, behind ganscope's contract (``ganscope import``, docs/import.md).

An imported run keeps its files in ``RUN/imported`` (one per epoch) and its origin in
``config.json``'s ``source`` (:class:`~ganscope.source.SourceConfig`). :class:`Adapter` makes
each file a generator like ganscope's own: ``G(z)`` (a conditional one ``G(z, labels)``) for
standard-normal ``z`` ``(N, z_dim)``, images ``(N, 1, 28, 28)`` in [-1, 1]. It maps z to the
file's latent distribution (``uniform``: each coordinate through the normal CDF to U(-1, 1)),
reshapes flat ``(N, 784)`` output and rescales a [0, 1] range, so every read command works on
it unchanged. Three kinds of file:

* TorchScript (``torch.jit.load``; never runs Python code from the file);
* ONNX, run by onnxruntime on the CPU (the optional extra ``pip install 'ganscope[export]'``);
* a ``state_dict`` and the class it belongs to, ``module:Class``: this imports the user's
  module, i.e. runs their code, as ``python -c "import module"`` would.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import GanscopeError, one_line
from .source import SourceConfig

#: The folder of a run that holds the imported files.
IMPORT_DIR = "imported"
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx", "state_dict": ".state.pt"}
#: The first layers whose weight acts on z alone (SeFa, GANSpace): a linear layer, or a
#: transposed convolution of z seen as a 1x1 image (DCGAN).
FIRST_LAYERS = ("Linear", "ConvTranspose2d")
IMAGE_PIXELS = 28 * 28
#: The name of the TorchScript extra file in which ganscope's exports keep their metadata.
TORCHSCRIPT_METADATA = "ganscope.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stored_path(run_path: Path, source: SourceConfig, epoch: int) -> Path:
    """Where the file of ``epoch`` lies in an imported run."""
    return run_path / IMPORT_DIR / f"generator_epoch_{epoch:03d}{SUFFIX[source.format]}"


class Adapter(nn.Module):
    """A generator file behind ganscope's contract (the module docstring)."""

    def __init__(self, inner: Any, z_dim: int, source: SourceConfig, num_classes: int = 0) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        self.latent, self.output_range = source.latent, source.output_range
        if isinstance(inner, nn.Module):
            self.inner = inner
        else:  # an onnxruntime session: no parameters, runs on the CPU
            self.session = inner
        # the device of a parameterless generator (sampling reads it from its buffers)
        self.register_buffer("anchor", torch.zeros(0), persistent=False)

    def raw(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The file's own output for ganscope's standard-normal ``z`` (before the contract's
        reshaping and rescaling)."""
        if self.latent == "uniform":
            z = 2 * torch.special.ndtr(z) - 1
        inputs = (z,) if labels is None else (z, labels)
        if hasattr(self, "session"):
            return _run_onnx(self.session, inputs).to(z.device)
        return self.inner(*inputs)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        images = self.raw(z, labels).reshape(-1, 1, 28, 28)
        return images * 2 - 1 if self.output_range == "0,1" else images

    def first_layer(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The weight ``(out, z_dim)`` and bias ``(out,)`` of the layer that reads z (SeFa,
        GANSpace), or None when the file has no such layer ganscope can read."""
        if hasattr(self, "session"):
            return _onnx_first_layer(self.session)
        return module_first_layer(self.inner, self.z_dim + self.num_classes)


def module_first_layer(module: nn.Module, inputs: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first layer with weights of ``module`` (TorchScript's too), if it is a Linear or a
    ConvTranspose2d whose input is ``inputs`` long: its weight as ``(out, inputs)`` and its
    bias, in float64 on the CPU; else None."""
    for _, layer in module.named_modules():
        kind = getattr(layer, "original_name", type(layer).__name__)
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, torch.Tensor):
            continue  # the first layer with weights decides
        weight = weight.detach().double().cpu()
        bias = getattr(layer, "bias", None)
        if kind == "Linear" and weight.shape[1] == inputs:
            zero = torch.zeros(weight.shape[0], dtype=weight.dtype)
            return weight, zero if bias is None else bias.detach().double().cpu()
        if kind == "ConvTranspose2d" and weight.shape[0] == inputs:  # (in, C, k, k)
            per_channel = weight[0, 0].numel()
            flat = weight.reshape(inputs, -1).T  # (C * k * k, in): z seen as a 1x1 image
            zero = torch.zeros(weight.shape[1], dtype=weight.dtype)
            bias = zero if bias is None else bias.detach().double().cpu()
            return flat, bias.repeat_interleave(per_channel)
        return None  # the first layer reads something else than z
    return None


# -- ONNX ---------------------------------------------------------------------------------------
def onnx_session(path: Path) -> Any:
    try:
        import onnxruntime  # optional: pip install 'ganscope[export]'
    except ImportError:
        raise GanscopeError(
            f"{path}: ONNX files need onnxruntime: pip install 'ganscope[export]'"
        ) from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types for a damaged file
        raise GanscopeError(f"{path} is not a readable ONNX model ({one_line(error)})") from None


def _run_onnx(session: Any, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    feeds = {}
    for spec, value in zip(session.get_inputs(), inputs):
        array = value.detach().cpu().numpy()
        feeds[spec.name] = array.astype(np.int64 if "int" in spec.type else np.float32)
    return torch.from_numpy(np.asarray(session.run(None, feeds)[0]).copy())


def onnx_inputs(session: Any) -> list[tuple[str, str, list[Any]]]:
    """(name, element type, shape) of each input of the file."""
    return [(spec.name, spec.type, list(spec.shape)) for spec in session.get_inputs()]


def _onnx_first_layer(session: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The Gemm or MatMul(+Add) that reads z directly, with its weight stored in the file."""
    import onnx  # optional: pip install 'ganscope[export]'
    from onnx import numpy_helper  # optional, as above

    path = getattr(session, "ganscope_path", None)
    if path is None:
        return None
    graph = onnx.load(str(path)).graph
    stored = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    z_name = graph.input[0].name
    for node in graph.node:
        if z_name not in node.input or len(node.input) < 2 or node.input[1] not in stored:
            continue
        weight = torch.from_numpy(np.array(stored[node.input[1]], dtype=np.float64))
        if node.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            weight = weight if trans_b else weight.T
            bias = stored.get(node.input[2]) if len(node.input) > 2 else None
        elif node.op_type == "MatMul":
            weight, bias = weight.T, _added_bias(graph, node.output[0], stored)
        else:
            return None
        zero = np.zeros(weight.shape[0])
        return weight, torch.from_numpy(np.array(zero if bias is None else bias, np.float64))
    return None


def _added_bias(graph: Any, output: str, stored: dict[str, np.ndarray]) -> np.ndarray | None:
    for node in graph.node:
        if node.op_type == "Add" and output in node.input:
            other = [name for name in node.input if name != output]
            return stored.get(other[0]) if other else None
    return None


# -- TorchScript and state_dict -------------------------------------------------------------------
def load_torchscript(path: Path) -> nn.Module:
    try:
        with warnings.catch_warnings():  # torch 2.10+ warns that TorchScript is deprecated
            warnings.simplefilter("ignore")
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # torch raises many types for a file that is not TorchScript
        raise GanscopeError(f"{path} is not a TorchScript model ({one_line(error)})") from None


def import_class(spec: str, base: Path | None = None) -> type:
    """``module:Class`` or ``file.py:Class`` (relative to ``base``, else the working folder):
    imports the module, i.e. runs the user's code."""
    module_name, _, class_name = spec.rpartition(":")
    if not module_name or not class_name:
        raise GanscopeError(f"--module {spec!r}: expected module:Class or file.py:Class")
    try:
        if module_name.endswith(".py"):
            file = (base or Path.cwd()) / module_name
            if not file.is_file():
                raise GanscopeError(f"--module {spec!r}: {file} does not exist")
            unit = importlib.util.spec_from_file_location(f"ganscope_user_{file.stem}", file)
            module = importlib.util.module_from_spec(unit)
            sys.modules[unit.name] = module
            unit.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except GanscopeError:
        raise
    except Exception as error:  # the user's module may raise anything while it imports
        raise GanscopeError(f"--module {spec!r} cannot be imported ({one_line(error)})") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise GanscopeError(f"--module {spec!r} is not an nn.Module class")
    return cls


def load_state_dict_module(path: Path, source: SourceConfig, base: Path | None) -> nn.Module:
    """The user's class built with its arguments, holding the weights of ``path``."""
    cls = import_class(source.module, base)
    try:
        module = cls(**json.loads(source.class_args))
    except Exception as error:  # the user's constructor
        raise GanscopeError(
            f"{source.module}({source.class_args}) failed ({one_line(error)})"
        ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise GanscopeError(f"{path} is not a readable state_dict ({one_line(error)})") from None
    if isinstance(weights, dict) and isinstance(weights.get("state_dict"), dict):
        weights = weights["state_dict"]  # the common {"state_dict": ...} wrapping
    if not isinstance(weights, dict):
        raise GanscopeError(f"{path} holds a {type(weights).__name__}, not a state_dict")
    try:
        module.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise GanscopeError(f"{path} does not fit {source.module} ({one_line(error)})") from None
    return module


def open_file(
    path: Path, source: SourceConfig, z_dim: int, num_classes: int = 0, base: Path | None = None
) -> Adapter:
    """The adapter of one file in ``source.format``; ``base``: where a ``file.py`` module lies."""
    if source.format == "onnx":
        inner = onnx_session(path)
        inner.ganscope_path = path
    elif source.format == "torchscript":
        inner = load_torchscript(path)
    else:
        inner = load_state_dict_module(path, source, base)
    return Adapter(inner, z_dim, source, num_classes).eval()


def load_generator(
    run_path: Path, source: SourceConfig, epoch: int, z_dim: int, num_classes: int
) -> nn.Module:
    """The imported generator of ``epoch``, read back from the run folder."""
    if epoch not in source.epochs:
        raise GanscopeError(
            f"imported run {run_path} has no generator for epoch {epoch}; "
            f"available: {sorted(source.epochs)}"
        )
    path = stored_path(run_path, source, epoch)
    if not path.is_file():
        raise GanscopeError(f"imported run {run_path} lacks {path}: it was moved or deleted")
    return open_file(path, source, z_dim, num_classes, base=run_path / IMPORT_DIR)


def self_contained_onnx(path: Path) -> bytes:
    """An ONNX file with its weights inside, also where they lay beside it (torch's exporter
    writes ``NAME.onnx.data`` for large models): what an imported run keeps."""
    import onnx  # optional: pip install 'ganscope[export]'

    try:
        return onnx.load(str(path)).SerializeToString()
    except Exception as error:  # onnx raises its own types for a damaged file
        raise GanscopeError(f"{path} is not an ONNX model ({one_line(error)})") from None


def file_metadata(path: Path, file_format: str) -> dict[str, str]:
    """What a file says about itself: ONNX ``metadata_props``, or a TorchScript file's
    ``ganscope.json`` extra file (ganscope's exports write both); {} for others."""
    if file_format == "onnx":
        import onnx  # optional: pip install 'ganscope[export]'

        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as error:  # onnx raises its own types for a damaged file
            raise GanscopeError(f"{path} is not an ONNX model ({one_line(error)})") from None
        return {entry.key: entry.value for entry in model.metadata_props}
    if file_format != "torchscript":
        return {}
    extra = {TORCHSCRIPT_METADATA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as error:  # torch raises many types for a file that is not TorchScript
        raise GanscopeError(f"{path} is not a TorchScript model ({one_line(error)})") from None
    try:
        found = json.loads(extra[TORCHSCRIPT_METADATA] or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
