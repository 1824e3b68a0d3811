"""Micro-batching: concurrent requests' texts (or images) go through the encoder as one batch.

Request threads hand an item to a `Batcher` and wait; one worker thread takes whatever has queued
meanwhile (up to `max_batch`; it never waits for more, so a lone request pays nothing) and runs the
model once. Under load the model sees a few large batches instead of many single items fighting over
two cores, and every forward pass runs on the worker thread, so the encoder is never called from two
threads at once.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

_STOP = object()


class Batcher:
    def __init__(self, fn: Callable[[list], np.ndarray], max_batch: int = 64, name: str = "batcher"):
        self.fn, self.max_batch = fn, max_batch
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item) -> Future:
        """A future of the model's output row for one item (async code awaits asyncio.wrap_future of it)."""
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def __call__(self, item, timeout: float | None = 60.0) -> np.ndarray:
        """The model's output row for one item (blocks until its batch has run)."""
        return self.submit(item).result(timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

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
            items, futures = zip(*batch)
            try:
                out = self.fn(list(items))
            except Exception as exc:  # noqa: BLE001  every waiting request gets the error
                for f in futures:
                    f.set_exception(exc)
                continue
            for f, row in zip(futures, out):
                f.set_result(row)
