"""Concurrent requests answered by one call: the explorer's forward passes, batched.

Threads :meth:`Batcher.submit` items under a key (for the explorer: a run and epoch). While
one batch is being computed, the items that arrive wait; when it is done, one of the waiting
threads takes every waiting item of its key (up to ``max_batch``) and computes them as the
next batch. A lone request is computed at once, alone; under load, the requests that queued
behind a forward pass share the next one. There is no timer and no worker thread: a request
never waits for company, only for the batch before it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ``compute(key, items)`` -> one result per item, in order.
Compute = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


@dataclass
class _Job:
    key: Hashable
    item: Any
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass
class Batcher:
    compute: Compute
    max_batch: int = 32
    #: How many batches of each size ran (what the load benchmark reports).
    sizes: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: list[_Job] = []
        self._busy = False

    def submit(self, key: Hashable, item: Any) -> Any:
        """``compute(key, [item, ...])``'s result for ``item``, computed in a batch with the
        other items of ``key`` waiting beside it; its exception, if the batch raised one."""
        job = _Job(key, item)
        with self._changed:
            self._waiting.append(job)
            while not job.done and self._busy:
                self._changed.wait()
            if job.done:
                return self._answer(job)
            batch = self._take(job)
            self._busy = True
        try:
            results = self.compute(key, [j.item for j in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
            for j, result in zip(batch, results):
                j.result = result
        except BaseException as error:  # every request of the batch gets the error
            for j in batch:
                j.error = error
        finally:
            with self._changed:
                for j in batch:
                    j.done = True
                self.sizes[len(batch)] += 1
                self._busy = False
                self._changed.notify_all()
        return self._answer(job)

    def _take(self, job: _Job) -> list[_Job]:
        """``job`` and the waiting jobs of its key, oldest first, at most ``max_batch``."""
        batch = [job] + [j for j in self._waiting if j.key == job.key and j is not job]
        batch = batch[: self.max_batch]
        taken = {id(j) for j in batch}
        self._waiting = [j for j in self._waiting if id(j) not in taken]
        return batch

    @staticmethod
    def _answer(job: _Job) -> Any:
        if job.error is not None:
            raise job.error
        return job.result
