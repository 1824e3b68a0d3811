"""Prometheus metrics and a structured access log, one middleware for both.

Series (each app has its own registry, so two apps in one process never share counts):
- vlclip_requests_total{route, method, status}
- vlclip_request_duration_seconds{route} (histogram)
- vlclip_request_errors_total{route, status}: responses with status >= 400
- vlclip_model_info{model_version}: 1 for the version answering now
- vlclip_ready: 1 once everything is loaded and warmed
- vlclip_reloads_total{outcome}: swapped | unchanged | refused
- vlclip_batch_size{batcher} (histogram): requests per batch; batcher text | image | similar
- vlclip_batch_step_seconds{batcher, step} (histogram): one batch's encode (forward pass), read
  (similar: the online store) or search (the index lookup): where a request's time goes under load
`route` is the route's path template ("/products/{product_id}/similar"), never the raw path.
"""
from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

access = logging.getLogger("vlclip.access")
WARMUP_HEADER = b"x-vlclip-warmup"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("vlclip_requests", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram("vlclip_request_duration_seconds", "Request latency", ["route"],
                                 buckets=BUCKETS, registry=r)
        self.errors = Counter("vlclip_request_errors", "Responses with status >= 400", ["route", "status"],
                              registry=r)
        self.model = Gauge("vlclip_model_info", "Model version answering requests", ["model_version"], registry=r)
        self.ready = Gauge("vlclip_ready", "1 when loaded and warmed", registry=r)
        self.reloads = Counter("vlclip_reloads", "Champion reload attempts", ["outcome"], registry=r)
        self.batch_size = Histogram("vlclip_batch_size", "Requests per batch", ["batcher"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_seconds = Histogram("vlclip_batch_step_seconds", "One batch's encode, read or search step",
                                       ["batcher", "step"], buckets=BUCKETS, registry=r)
        self._versions: set[str] = set()

    def serving(self, version: str) -> None:
        with warnings.catch_warnings():  # Feast's import turns on prometheus multi-process mode, which warns
            warnings.simplefilter("ignore", UserWarning)
            for labels in list(self._versions - {version}):
                self.model.remove(labels)
        self._versions = {version}
        self.model.labels(model_version=version).set(1)

    def batch(self, batcher: str, step: str, size: int | None, seconds: float) -> None:
        """One batch step (ServiceState.observe); `size` comes with a batch's first step only."""
        if size is not None:
            self.batch_size.labels(batcher).observe(size)
        self.batch_seconds.labels(batcher, step).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def samples(exposition: str) -> dict[tuple[str, tuple], float]:
    """Prometheus text (`Metrics.exposition`, GET /metrics) -> {(sample name, sorted label pairs): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(exposition) for s in family.samples}


def _route(scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class Observe:
    """ASGI middleware: counts and times every HTTP request and writes one JSON line per request, to
    `write` (an AccessLog's: `vlclip serve`) or else through the `vlclip.access` logger."""

    def __init__(self, app, metrics: Metrics, write: Callable[[str], None] | None = None):
        self.app, self.metrics, self.write = app, metrics, write or access.info
        self._series: dict[tuple, tuple] = {}  # (route, method, status) -> its counters and histogram

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if (WARMUP_HEADER, b"1") not in scope.get("headers", ()):  # the service's own warm-up is not traffic
                self._record(scope, status, time.perf_counter() - t0)

    def _record(self, scope, status: int, seconds: float) -> None:
        route, method = _route(scope), scope["method"]
        series = self._series.get((route, method, status))
        if series is None:  # a label lookup takes a lock and hashes its values: once per combination
            series = self._series[(route, method, status)] = (
                self.metrics.requests.labels(route, method, str(status)), self.metrics.latency.labels(route),
                self.metrics.errors.labels(route, str(status)) if status >= 400 else None)
        series[0].inc()
        series[1].observe(seconds)
        if series[2] is not None:
            series[2].inc()
        client = scope.get("client") or ("", 0)
        self.write(json.dumps({
            "method": method, "route": route, "path": scope["path"][:200], "status": status,
            "ms": round(seconds * 1000, 2), "model_version": scope.get("state", {}).get("model_version"),
            "client": client[0]}))


class AccessLog:
    """The access log of `vlclip serve`: `write(line)` queues a line, and a thread of its own writes
    what has queued meanwhile in one call, so the HTTP loop never waits on a slow terminal, pipe or
    disk, nor pays for a log record per request. `stop()` writes the rest."""

    def __init__(self, stream=None):
        import queue
        import sys
        import threading

        self._lines: queue.SimpleQueue = queue.SimpleQueue()
        self.write = self._lines.put
        self._thread = threading.Thread(target=self._run, args=(stream or sys.stderr,), name="vlclip-access-log",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._lines.put(None)
        self._thread.join(10)

    def _run(self, stream) -> None:
        import queue

        done = False
        while not done:
            batch = [self._lines.get()]
            while True:
                try:
                    batch.append(self._lines.get_nowait())
                except queue.Empty:
                    break
            done = None in batch
            try:
                stream.write("".join(f"{line}\n" for line in batch if line is not None))
                stream.flush()
            except (OSError, ValueError):  # a closed stream: the lines are dropped, the service goes on
                pass


def start_logging() -> AccessLog:
    """Service lines with a time stamp on stderr; -> the access log (its `write` goes to Observe)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return AccessLog()
