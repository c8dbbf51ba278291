"""``batching``: concurrent submissions share one call per key; errors reach every caller."""

from __future__ import annotations

import threading
import time

import pytest

from ganscope.batching import Batcher


def _concurrently(batcher: Batcher, jobs: list[tuple], start: threading.Event) -> list:
    answers: list = [None] * len(jobs)

    def ask(i: int, key, item) -> None:
        start.wait()
        try:
            answers[i] = batcher.submit(key, item)
        except Exception as error:  # the test reads it
            answers[i] = error

    threads = [threading.Thread(target=ask, args=(i, *job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    return threads, answers


def test_a_lone_item_is_computed_alone_and_at_once():
    calls = []
    batcher = Batcher(lambda key, items: calls.append((key, list(items))) or [2 * i for i in items])
    assert batcher.submit("a", 3) == 6
    assert calls == [("a", [3])] and batcher.sizes == {1: 1}


def test_items_waiting_behind_a_batch_share_the_next_one_per_key():
    release = threading.Event()
    calls = []

    def compute(key, items):
        calls.append((key, sorted(items)))
        if items == [0]:  # the first batch holds the others back until all are waiting
            release.wait(timeout=10)
        return [(key, i * 10) for i in items]

    batcher = Batcher(compute, max_batch=3)
    first = threading.Thread(target=lambda: batcher.submit("a", 0))
    first.start()
    while not calls:
        time.sleep(0.001)
    jobs = [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("a", 5)]
    start = threading.Event()
    threads, answers = _concurrently(batcher, jobs, start)
    start.set()
    while len(batcher._waiting) < len(jobs):
        time.sleep(0.001)
    release.set()
    for thread in [first, *threads]:
        thread.join(timeout=10)
    assert answers == [("a", 10), ("a", 20), ("b", 30), ("a", 40), ("a", 50)]
    # after the first batch: a's four waiting items in batches of at most 3, b's alone
    sizes = {key: [len(items) for k, items in calls[1:] if k == key] for key in "ab"}
    assert sorted(sizes["a"]) == [1, 3] and sizes["b"] == [1]
    assert all(items == sorted(items) for _, items in calls)
    assert sum(n * count for n, count in batcher.sizes.items()) == 6


def test_an_error_reaches_every_request_of_its_batch_and_not_the_next():
    release = threading.Event()
    state = {"n": 0}

    def compute(key, items):
        state["n"] += 1
        if state["n"] == 1:
            release.wait(timeout=10)
            return [None]
        if state["n"] == 2:
            raise ValueError("broken batch")
        return ["fine" for _ in items]

    batcher = Batcher(compute)
    first = threading.Thread(target=lambda: batcher.submit("k", 0))
    first.start()
    while state["n"] == 0:
        time.sleep(0.001)
    start = threading.Event()
    threads, answers = _concurrently(batcher, [("k", 1), ("k", 2)], start)
    start.set()
    while len(batcher._waiting) < 2:
        time.sleep(0.001)
    release.set()
    for thread in [first, *threads]:
        thread.join(timeout=10)
    assert all(isinstance(a, ValueError) for a in answers)
    assert batcher.submit("k", 3) == "fine"


def test_a_wrong_count_of_results_is_an_error():
    batcher = Batcher(lambda key, items: [])
    with pytest.raises(RuntimeError, match="0 results for a batch of 1"):
        batcher.submit("k", 1)
