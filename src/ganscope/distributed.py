"""Training on several processes: ``torchrun ... -m ganscope train`` and DistributedDataParallel.

ganscope has no launcher of its own. Started by torchrun (its ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK`` variables are set), training joins the process group (NCCL on CUDA, one GPU per
process; gloo on the CPU) and every rank computes its slice of the *same* training as one
process would:

* ``config.train.batch_size`` is the global batch (the report's 64); every rank draws the same
  permutation of the data and the same global latent batch (the RNGs are seeded alike and
  consumed alike) and takes rows ``rank*b .. (rank+1)*b`` of both, ``b = batch / ranks``;
* each rank's losses are means over its slice and DDP averages the gradients, so the update
  is the global batch's;
* BatchNorm (the CNN GAN) normalises with the global batch's statistics: torch's
  ``SyncBatchNorm`` on GPUs, :class:`GlobalBatchNorm` on the CPU, where torch's does not run.

The networks stay the plain modules of the report (SyncBatchNorm layers hold the same
parameters and buffers under the same names), so a checkpoint written by N ranks resumes in
one process and the other way round. Only rank 0 writes the run folder. Checks that every rank
makes go through :meth:`World.agree`: one rank's mistake stops all of them before training,
with one line from rank 0.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from .devices import resolve_device
from .errors import GanscopeError

T = TypeVar("T")

#: How long a rank waits for the others in one collective (rank 0 evaluating, writing
#: figures) before the run fails instead of hanging.
TIMEOUT = timedelta(minutes=30)


def launched() -> bool:
    """Whether this process was started by torchrun (or another env:// launcher)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launched_size() -> int:
    """The number of processes torchrun started (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def launched_rank_main() -> bool:
    """Whether this process is rank 0 (or was not started by torchrun)."""
    return not launched() or os.environ["RANK"] == "0"


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    #: Whether a process group is in use (torchrun, even with one rank).
    joined: bool = False

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run folder and prints progress."""
        return self.rank == 0

    def slice(self, batch: int) -> slice:
        """This rank's rows of a global batch of ``batch`` rows."""
        per_rank = batch // self.size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def agree(self, check: Callable[[], T]) -> T:
        """Run ``check`` on every rank; if it raises a GanscopeError on any, raise it on all.

        Rank 0 prints the error (marked ``shared`` elsewhere): the user reads one line, and no
        rank goes on to wait for the others in a collective that never comes.
        """
        value, message = None, None
        try:
            value = check()
        except GanscopeError as error:
            if not self.joined:
                raise
            message = str(error)
        if self.joined:
            messages: list[str | None] = [None] * self.size
            dist.all_gather_object(messages, message)
            failed = [(rank, text) for rank, text in enumerate(messages) if text]
            if failed:
                rank, text = failed[0]
                same = all(text == other for _, other in failed) and len(failed) == self.size
                raise shared_error(text if same else f"rank {rank}: {text}", self)
        return value

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over the ranks (every rank gets it)."""
        if self.size == 1:
            return values
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values / self.size

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing when not joined); see :func:`rendezvous`."""
        if self.joined:
            rendezvous()


#: One process, no torchrun: what every function taking a world defaults to.
SINGLE = World()

#: How long :func:`rendezvous` waits for the backend's threads to let go of its tensor.
RELEASE_TIMEOUT_S = 10.0


def rendezvous() -> None:
    """Every rank waits here for the others, and returns once the backend holds nothing of it.

    Not ``dist.barrier()``: gloo's barrier keeps the collectives still in flight when it is
    called, and its worker thread frees them after the barrier has returned. A tensor freed
    by that thread while Python shuts down aborts the process ("terminate called without an
    active exception", SIGABRT after a finished run; 4 of 98 two-rank runs beside two busy
    loops, benchmarks/torchrun_exit.sh). An all-reduce of a tensor of our own synchronises the
    ranks as well, and every reference the backend holds to a tensor counts on its Python
    object: once the count is back, no thread of the backend will touch Python for it. gloo's
    all-reduce returns when every rank has contributed; other backends keep their barrier.
    """
    if dist.get_backend() != "gloo":  # NCCL's barrier waits on the GPU, and no gloo thread
        dist.barrier()
        return
    token = torch.zeros(1)
    alone = sys.getrefcount(token)
    dist.all_reduce(token)
    wait_released(token, alone)


def wait_released(tensor: torch.Tensor, alone: int, timeout: float = RELEASE_TIMEOUT_S) -> bool:
    """Sleep until ``tensor``'s reference count is back to ``alone`` (``sys.getrefcount`` in
    the caller before a collective took it) or ``timeout`` seconds pass; whether it came
    back. Sleeping releases the GIL, which the thread that lets go of the tensor needs."""
    deadline = time.monotonic() + timeout
    while sys.getrefcount(tensor) > alone + 1:  # + this frame's own reference
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def shared_error(message: str, world: World, kind: type = GanscopeError) -> GanscopeError:
    """An error every rank raises alike: only rank 0 prints it (see ``cli.main``)."""
    error = kind(message)
    error.shared = not world.main  # type: ignore[attr-defined]
    return error


@contextlib.contextmanager
def session(device_name: str) -> Iterator[tuple[World, torch.device]]:
    """Join torchrun's process group for the duration (a no-op outside torchrun).

    Yields this rank's world and device (``--device`` resolved; ``cuda:LOCAL_RANK`` for
    CUDA). The group is left on exit if this call joined it, after a barrier when the body
    ended normally: every rank leaves together.
    """

    if not launched():
        yield World(), resolve_device(device_name)
        return
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        device = _rank_device(resolve_device(device_name), size, local_rank)
    except GanscopeError as error:  # before joining, every rank finds the same mistake
        raise shared_error(str(error), World(rank, size, local_rank)) from None
    backend = "nccl" if device.type == "cuda" else "gloo"
    ours = not dist.is_initialized()
    if ours:
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=TIMEOUT, **kwargs)
    world = World(rank, size, local_rank, joined=True)
    try:
        yield world, device
        if ours:  # no rank leaves while another still works (rank 0 writing the last files),
            world.barrier()  # nor while gloo's threads still hold its tensors (SIGABRT at exit)
    finally:
        if ours:
            dist.destroy_process_group()


def _rank_device(device: torch.device, size: int, local_rank: int) -> torch.device:
    if device.type == "cuda":
        if device.index is not None and size > 1:
            raise GanscopeError(
                f"under torchrun every process takes the GPU cuda:LOCAL_RANK; pass --device "
                f"cuda or auto, not {device}"
            )
        if local_rank >= torch.cuda.device_count():
            raise GanscopeError(
                f"torchrun started {local_rank + 1}+ processes on this node but it has only "
                f"{torch.cuda.device_count()} GPUs; use --nproc_per_node "
                f"{torch.cuda.device_count()} or fewer"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise GanscopeError(
            f"distributed training runs on CUDA (NCCL) or the CPU (gloo), not on {device.type}"
        )
    return device


def check_batch(batch_size: int, world: World) -> None:
    """The global batch must split evenly over the ranks, at least one image each."""
    if batch_size < world.size or batch_size % world.size:
        raise GanscopeError(
            f"the global batch of {batch_size} images does not split evenly over "
            f"{world.size} processes; pass a --batch-size that {world.size} divides (or "
            "--per-rank-batch to give every process a whole batch)"
        )


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d that normalises with statistics of the batch over all ranks (CPU, gloo).

    torch's ``SyncBatchNorm`` runs only on accelerators. This is the same computation by
    all-reduces that autograd differentiates: the sum of the inputs, then of the squared
    deviations, over every rank's slice. Outside training, or with one rank, it is
    ``BatchNorm2d`` exactly. Parameters and buffers are BatchNorm2d's, under its names.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce  # only for several processes

        count = x.numel() // x.shape[1] * dist.get_world_size()
        shape = (1, -1, 1, 1)
        mean = all_reduce(x.sum(dim=(0, 2, 3))) / count  # (C,)
        centred = x - mean.view(shape)
        var = all_reduce(centred.square().sum(dim=(0, 2, 3))) / count  # biased, as BN uses
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    self.momentum
                    if self.momentum is not None
                    else (1.0 / float(self.num_batches_tracked))
                )
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / (count - 1), momentum)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            return centred * (scale * self.weight).view(shape) + self.bias.view(shape)
        return centred * scale.view(shape)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm2d normalising over the global batch, in place where
    possible: the new layers hold the very same parameter and buffer tensors (an optimiser
    made before keeps working, state dicts keep their keys)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            replacement = GlobalBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            )  # fmt: skip
            replacement._parameters = child._parameters
            replacement._buffers = child._buffers
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            sync_batchnorm(child, device)
    return module


def replicate(module: nn.Module, device: torch.device) -> nn.Module:
    """The DistributedDataParallel wrapper that the training step calls instead of ``module``.

    Buffers are not broadcast at every forward: with synchronised BatchNorm every rank's
    running statistics are equal already.
    """
    # DDP is imported only when several processes train (torchrun)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # torch 2.13 renamed the option (the old name warns); older versions know only the old.
    renamed = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    sync = {"forward_sync_buffers" if renamed else "broadcast_buffers": False}
    return DistributedDataParallel(module, device_ids=ids, **sync)
