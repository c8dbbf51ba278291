"""Replaying a whole training step as one CUDA graph.

A GAN step on Fashion-MNIST-sized images is a few hundred small kernels; on a GPU the time goes
to launching them from Python, not to running them. :class:`CapturedStep` records the step once
(data gather and normalisation, both players' forward and backward passes, both Adam updates)
and then replays the recording with one call per step. What changes from step to step enters
through static input buffers that the step reads: the batch's indices into the device-resident
dataset and the latent batch (and with ``--ema`` the average's weight), all copied in on the
device before each replay. A step that takes different kernels on some steps (lazy R1) is one
graph per form (:class:`CapturedForms`).

The first ``warmup`` calls run eagerly on a side stream (CUDA's rule for anything to be
captured: lazy initialisation such as the optimisers' state and autograd's stream set-up must
happen before capture); they are real training steps, not thrown away. The next call captures
and replays, so every call advances training by exactly one step, as the eager loop does.

The mechanics are behind a small backend (:class:`CudaGraphBackend`) so that the bookkeeping
can be tested on a CPU with an emulation that, like CUDA, does not run the step while
recording it.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Protocol

import torch

from .errors import GanscopeError

#: Adam with ``capturable=True`` warns on every uncaptured step; the warm-up steps are meant.
_CAPTURABLE_WARNING = "This instance was constructed with capturable=True"


class GraphBackend(Protocol):
    def eager(self, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Run ``body`` now (a warm-up step) and return its output, safe to use afterwards."""

    def capture(
        self, body: Callable[[], torch.Tensor], like: torch.Tensor
    ) -> tuple[Callable[[], None], torch.Tensor]:
        """Record ``body`` without running it; return ``(replay, output)``: each ``replay()``
        runs the recording once and leaves its result in ``output`` (shaped like ``like``)."""


class CudaGraphBackend:
    """torch.cuda graphs, following PyTorch's whole-network capture recipe."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.side_stream = torch.cuda.Stream(device)

    def eager(self, body: Callable[[], torch.Tensor]) -> torch.Tensor:
        current = torch.cuda.current_stream(self.device)
        self.side_stream.wait_stream(current)  # the static inputs were filled on `current`
        with torch.cuda.stream(self.side_stream):
            output = body()
        current.wait_stream(self.side_stream)
        return output.clone()  # allocated on `current`, where the caller goes on using it

    def capture(
        self, body: Callable[[], torch.Tensor], like: torch.Tensor
    ) -> tuple[Callable[[], None], torch.Tensor]:
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream(self.device)
        try:
            # Capture on the warm-up stream: libraries' per-stream handles and workspaces
            # (cuBLAS) were created there by the warm-up, not lazily during the capture.
            with torch.cuda.graph(graph, stream=self.side_stream):
                output = body()
        except Exception:
            self._recover(current)
            raise
        return graph.replay, output

    def _recover(self, stream: torch.cuda.Stream) -> None:
        """After a failed capture: the caller's stream is current again and no capture is
        open, and a small capture works; else CUDA is unusable for graphs in this process,
        which is a clear error rather than a slow or wrong run."""
        try:
            torch.cuda.set_stream(stream)
            torch.cuda.synchronize(self.device)
            probe, value = torch.cuda.CUDAGraph(), torch.zeros(1, device=self.device)
            with torch.cuda.graph(probe, stream=self.side_stream):
                value.add_(1)
            probe.replay()
            torch.cuda.synchronize(self.device)
            usable = value.item() == 1 and torch.cuda.current_stream(self.device) == stream
        except Exception:  # noqa: BLE001 - any failure here means CUDA is not usable
            usable = False
        if not usable:
            raise GanscopeError(
                "a failed CUDA graph capture left this process unable to use CUDA graphs; "
                "run again with --cuda-graph off"
            )


class CapturedStep:
    """One training step per call, replayed from a CUDA graph after ``warmup`` eager calls.

    ``body`` computes a step from the static buffers :attr:`inputs` and returns a tensor of
    statistics. Calling ``step(**values)`` copies each value into its buffer (allocated by the
    first call; a graph replays fixed shapes, so later calls must match them), advances
    training by one step and returns a copy of the statistics. If capture fails, the step
    warns once and goes on eagerly. ``reset`` puts the training state in order before a
    capture and again after a failed one.
    """

    def __init__(
        self,
        body: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        backend: GraphBackend,
        *,
        warmup: int = 3,
        reset: Callable[[], None] = lambda: None,
    ) -> None:
        if warmup < 1:
            raise ValueError("CUDA graph capture needs at least one eager warm-up step")
        self.inputs: dict[str, torch.Tensor] = {}
        self._body, self._backend, self._warmup = body, backend, warmup
        self._reset = reset
        self._replay: Callable[[], None] | None = None
        self._output: torch.Tensor | None = None
        self._last: torch.Tensor | None = None
        self.calls = 0
        #: "warming up", "captured" or "eager" (capture failed).
        self.mode = "warming up"

    def __call__(self, **values: torch.Tensor) -> torch.Tensor:
        if self.calls and set(values) != set(self.inputs):
            raise ValueError(
                f"the step takes the inputs {sorted(self.inputs)}, got {sorted(values)}"
            )
        for name, value in values.items():
            if name not in self.inputs:
                self.inputs[name] = torch.empty_like(value)
            elif self.inputs[name].shape != value.shape:
                raise ValueError(
                    f"input {name!r} has shape {tuple(value.shape)}; the captured step "
                    f"takes {tuple(self.inputs[name].shape)}"
                )
            self.inputs[name].copy_(value)
        self.calls += 1
        if self.mode == "warming up" and self.calls > self._warmup:
            self._capture()
        if self.mode == "captured":
            self._replay()
            return self._output.clone()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CAPTURABLE_WARNING)
            self._last = self._backend.eager(lambda: self._body(self.inputs))
        return self._last

    def _capture(self) -> None:
        self._reset()
        try:
            self._replay, self._output = self._backend.capture(
                lambda: self._body(self.inputs), self._last
            )
        except GanscopeError:
            raise
        except Exception as error:  # noqa: BLE001 - any capture failure falls back to eager
            self._reset()
            self.mode = "eager"
            # Ending a broken capture raises again: the first error is the one that says why.
            while error.__context__ is not None and isinstance(error.__context__, Exception):
                error = error.__context__
            reason = (str(error).strip().splitlines() or [""])[0]
            warnings.warn(
                f"CUDA graph capture of the training step failed at {failing_operation(error)} "
                f"({type(error).__name__}: {reason}); training goes on without it (pass "
                "--cuda-graph off to skip the attempt)",
                stacklevel=3,
            )
            return
        self.mode = "captured"


class CapturedForms:
    """A step that takes one of a few forms, each captured as its own graph.

    A graph replays one fixed sequence of kernels; a step whose kernels change from step to
    step (the lazy R1 penalty, every N steps) is one :class:`CapturedStep` per form, made by
    ``make(form)`` when ``choose()`` first names that form. ``per_step()`` gives the inputs
    that every call adds to the caller's (device tensors, e.g. the moving average's weight).
    Each form warms up and captures on its own, and falls back to eager steps on its own.
    """

    def __init__(
        self,
        make: Callable[[Hashable], CapturedStep],
        choose: Callable[[], Hashable],
        per_step: Callable[[], dict[str, torch.Tensor]] = dict,
    ) -> None:
        self._make, self._choose, self._per_step = make, choose, per_step
        self.forms: dict[Hashable, CapturedStep] = {}

    def __call__(self, **values: torch.Tensor) -> torch.Tensor:
        form = self._choose()
        if form not in self.forms:
            self.forms[form] = self._make(form)
        return self.forms[form](**values, **self._per_step())

    @property
    def mode(self) -> str:
        """``captured`` once every form met so far replays, ``eager`` if any capture failed,
        else ``warming up``."""
        modes = {step.mode for step in self.forms.values()}
        if "eager" in modes:
            return "eager"
        return "captured" if modes == {"captured"} else "warming up"


def failing_operation(error: BaseException) -> str:
    """Where in the step ``error`` arose: the innermost frame of the traceback outside torch
    and this module, as ``file:line (source)`` (the operation that broke the capture)."""
    frames = traceback.extract_tb(error.__traceback__)
    torch_dir = str(Path(torch.__file__).parent)
    ours = [f for f in frames if not f.filename.startswith(torch_dir) and f.filename != __file__]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "an unknown operation"
    source = (frame.line or "").split("  #")[0].strip()
    return f"{Path(frame.filename).name}:{frame.lineno} ({source})"


__all__ = ["CapturedForms", "CapturedStep", "CudaGraphBackend", "GraphBackend"]
