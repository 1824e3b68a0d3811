"""Micro-batching: concurrent requests' texts (or images) go through the encoder as one batch.

Request threads hand an item to a `Batcher` and wait; one worker thread takes whatever has queued
meanwhile (up to `max_batch`; it never waits for more, so a lone request pays nothing) and runs the
model once. Under load the model sees a few large batches instead of many single items fighting over
two cores, and every forward pass runs on the worker thread, so the encoder is never called from two
threads at once.

With `then`, a batch goes through two workers in turn, a pipeline: the second runs `then(items,
outputs)` on one batch (the index search) while the first already runs `fn` on the next (the
forward pass, which releases the GIL), so neither waits for the other under load.

`observe(step, size, seconds)`, where given, hears of every batch each step ran (0: `fn`, 1: `then`).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

_STOP = object()


class Batcher:
    def __init__(self, fn: Callable[[list], np.ndarray], max_batch: int = 64, name: str = "batcher",
                 then: Callable[[list, np.ndarray], list] | None = None,
                 observe: Callable[[int, int, float], None] | None = None):
        self.fn, self.then, self.max_batch = fn, then, max_batch
        self._observe = observe or (lambda step, size, seconds: None)
        self._queue: queue.Queue = queue.Queue()
        self._handoff: queue.Queue | None = None if then is None else queue.Queue()
        self._threads = [threading.Thread(target=self._run, name=name, daemon=True)]
        if then is not None:
            self._threads.append(threading.Thread(target=self._finish, name=f"{name}-then", daemon=True))
        for thread in self._threads:
            thread.start()

    def submit(self, item) -> Future:
        """A future of the output row for one item (async code awaits asyncio.wrap_future of it)."""
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def __call__(self, item, timeout: float | None = 60.0):
        """The output row for one item (blocks until its batch has run)."""
        return self.submit(item).result(timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=10)

    def _take(self) -> list | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                self._queue.put(_STOP)
                break
            batch.append(nxt)
        return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            items, futures = (list(x) for x in zip(*batch))
            t0 = time.perf_counter()
            try:
                out = self.fn(items)
                self._observe(0, len(items), time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001  every waiting request gets the error
                _fail(futures, exc)
                continue
            if self._handoff is None:
                _resolve(futures, out)
            else:
                self._handoff.put((items, futures, out))
        if self._handoff is not None:
            self._handoff.put(_STOP)

    def _finish(self) -> None:
        while (job := self._handoff.get()) is not _STOP:
            items, futures, out = job
            t0 = time.perf_counter()
            try:
                rows = self.then(items, out)
                self._observe(1, len(items), time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001
                _fail(futures, exc)
                continue
            _resolve(futures, rows)


def _resolve(futures: list[Future], rows) -> None:
    for f, row in zip(futures, rows):
        f.set_result(row)


def _fail(futures: list[Future], exc: Exception) -> None:
    for f in futures:
        f.set_exception(exc)
