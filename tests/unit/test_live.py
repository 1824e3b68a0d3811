"""Readiness, champion reloads under load, metrics and what is thread-safe (serving.live, serving.observe,
serving.batching), on real Edge indexes and Feast repos with the fake encoder of service_world."""
from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service_world import INDEX, FakeEncoder, loader, make_world, wait_ready
from serving.app import ServeParams, create_app
from serving.backends import open_searcher
from serving.batching import Batcher
from serving.observe import AccessLog, samples

NO_POLL = ServeParams(reload_poll_s=0)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """Version 7 and version 8 of the same catalog, each with its own index and Feast repo."""
    a, b = tmp_path_factory.mktemp("v7"), tmp_path_factory.mktemp("v8")
    make_world(a, "7")
    make_world(b, "8")
    return a, b


class Switch:
    """What the registry says now: the champion's version and the world that publishes it."""

    def __init__(self, worlds):
        self.worlds, self.version, self.loaded = dict(zip(("7", "8"), worlds)), "7", []
        self.fail_with: str | None = None
        self.gate = threading.Event()
        self.gate.set()

    def load(self):
        self.gate.wait(30)
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        state = loader(self.worlds[self.version])()
        self.loaded.append(state)
        return state

    def probe(self) -> str:
        return self.version


def test_ready_only_when_loaded_and_warmed_while_healthz_answers(worlds):
    switch = Switch(worlds)
    switch.gate.clear()  # loading hangs until released
    with TestClient(create_app(switch.load, NO_POLL, switch.probe)) as c:
        assert c.get("/healthz").json() == {"status": "ok", "model_version": None}
        assert c.get("/readyz").status_code == 503 and c.get("/readyz").json()["status"] == "loading"
        res = c.post("/search", json={"query": "red"})
        assert res.status_code == 503 and "not ready" in res.json()["detail"]
        switch.gate.set()
        assert wait_ready(c)["status"] == "ready"
        assert c.post("/search", json={"query": "red"}).json()["model_version"] == "7"
        # warm-up ran one query of each kind: Feast's store is already open
        assert switch.loaded[0].features._store is not None


def test_a_failed_first_load_reports_why_and_calls_back(worlds):
    switch, failures = Switch(worlds), []
    switch.fail_with = "model versions disagree {'champion': '8', 'embeddings': '7', 'index': '7'}"
    with TestClient(create_app(switch.load, NO_POLL, switch.probe, on_fail=failures.append)) as c:
        body = wait_ready(c)
        assert body["status"] == "failed" and "model versions disagree" in body["reason"]
        assert c.get("/readyz").status_code == 503 and failures and "disagree" in failures[0]


def test_reload_under_load_swaps_atomically_and_drains_the_old_version(worlds):
    switch = Switch(worlds)
    with TestClient(create_app(switch.load, NO_POLL, switch.probe)) as c:
        wait_ready(c)
        assert c.post("/admin/reload").json()["outcome"] == "unchanged"
        slow = threading.Event()
        old_encode = switch.loaded[0].encoder.encode_text

        def slow_encode(texts, ids=None):
            if slow.is_set():
                time.sleep(1.0)
            return old_encode(texts, ids)

        switch.loaded[0].encoder.encode_text = slow_encode
        slow.set()
        with ThreadPoolExecutor(9) as pool:
            in_flight = pool.submit(c.post, "/search", json={"query": "red"})
            time.sleep(0.3)  # the slow request holds version 7 now
            switch.version = "8"
            reloading = pool.submit(c.post, "/admin/reload")
            during = [pool.submit(c.post, "/search", json={"query": "green", "k": 3}) for _ in range(64)]
            outcome = reloading.result().json()
            answers = [f.result() for f in during]
            first = in_flight.result()
        assert outcome["outcome"] == "swapped" and outcome["previous"] == "7" and outcome["model_version"] == "8"
        assert first.status_code == 200 and first.json()["model_version"] == "7"  # finished on the old one
        assert all(r.status_code == 200 for r in answers)
        assert {r.json()["model_version"] for r in answers} <= {"7", "8"}
        assert c.post("/search", json={"query": "red"}).json()["model_version"] == "8"
        assert switch.loaded[0].searcher._shards == {}  # closed once drained
        assert c.get("/readyz").json()["last_reload"]["outcome"] == "swapped"
        metrics = c.get("/metrics").text
        assert 'vlclip_model_info{model_version="8"} 1.0' in metrics and 'model_version="7"' not in metrics
        assert 'vlclip_reloads_total{outcome="swapped"} 1.0' in metrics


def test_a_mismatched_champion_keeps_the_old_version_serving(worlds):
    switch = Switch(worlds)
    with TestClient(create_app(switch.load, NO_POLL, switch.probe)) as c:
        wait_ready(c)
        switch.version = "9"  # the alias moved, embed and index have not published version 9 yet
        switch.fail_with = "model versions disagree {'champion': '9', 'embeddings': '7', 'index': '7'}"
        outcome = c.post("/admin/reload").json()
        assert outcome["outcome"] == "refused" and "disagree" in outcome["reason"] and outcome["model_version"] == "7"
        res = c.post("/search", json={"query": "red"})
        assert res.status_code == 200 and res.json()["model_version"] == "7"
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and ready["last_reload"]["outcome"] == "refused"


def test_polling_follows_the_champion(worlds):
    switch = Switch(worlds)
    with TestClient(create_app(switch.load, ServeParams(reload_poll_s=0.2), switch.probe)) as c:
        wait_ready(c)
        switch.version = "8"
        deadline = time.monotonic() + 60
        while c.post("/search", json={"query": "red"}).json()["model_version"] != "8":
            assert time.monotonic() < deadline, "the poller never swapped in version 8"
            time.sleep(0.1)


def test_metrics_and_access_log(worlds, caplog):
    switch = Switch(worlds)
    with TestClient(create_app(switch.load, NO_POLL, switch.probe)) as c:
        wait_ready(c)
        before = samples(c.get("/metrics").text)
        with caplog.at_level("INFO", logger="vlclip.access"):
            c.post("/search", json={"query": "red"})
            c.get("/products/nope/similar")
        text = c.get("/metrics").text
    after = samples(text)
    for name, labels in [("vlclip_batch_size_count", (("batcher", "text"),)),
                         ("vlclip_batch_step_seconds_count", (("batcher", "text"), ("step", "encode"))),
                         ("vlclip_batch_step_seconds_count", (("batcher", "text"), ("step", "search")))]:
        assert after[(name, labels)] - before.get((name, labels), 0) == 1  # one request: one batch, each step
    assert after[("vlclip_batch_size_sum", (("batcher", "text"),))] - \
        before.get(("vlclip_batch_size_sum", (("batcher", "text"),)), 0) == 1
    assert 'vlclip_requests_total{method="POST",route="/search",status="200"} 1.0' in text
    assert 'vlclip_request_errors_total{route="/products/{product_id}/similar",status="404"} 1.0' in text
    assert 'vlclip_request_duration_seconds_bucket{le="0.5",route="/search"}' in text
    assert "vlclip_ready 1.0" in text
    lines = [r.getMessage() for r in caplog.records if r.name == "vlclip.access"]
    assert any('"route": "/search"' in m and '"status": 200' in m and '"model_version": "7"' in m and '"ms": ' in m
               for m in lines)


def test_the_access_log_writer_keeps_every_line_in_order(worlds):
    stream = io.StringIO()
    log = AccessLog(stream)
    writers = [threading.Thread(target=lambda n=n: [log.write(f"{n} {i}") for i in range(500)]) for n in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    switch = Switch(worlds)
    with TestClient(create_app(switch.load, NO_POLL, switch.probe, access_log=log.write)) as c:
        wait_ready(c)
        c.post("/search", json={"query": "red"})
    log.stop()
    lines = stream.getvalue().splitlines()
    for n in range(3):
        assert [x for x in lines if x.startswith(f"{n} ")] == [f"{n} {i}" for i in range(500)]
    served = [json.loads(x) for x in lines if x.startswith("{")]
    assert [(x["status"], x["model_version"]) for x in served if x["route"] == "/search"] == [(200, "7")]
    gone = io.StringIO()
    closed = AccessLog(gone)
    gone.close()
    closed.write("one")  # a closed stream drops its lines; the writer goes on and stops when told
    time.sleep(0.3)
    assert closed._thread.is_alive()
    closed.stop()
    assert not closed._thread.is_alive()


def test_edge_shards_answer_concurrent_queries_as_serial_ones(worlds):
    searcher = open_searcher(INDEX, worlds[1] / "data" / "index")
    try:
        rng = np.random.default_rng(0)
        queries = [rng.normal(size=searcher.dim).astype(np.float32) for _ in range(200)]
        serial = [[h["product_id"] for h in searcher.search(q, None, 5)] for q in queries]
        with ThreadPoolExecutor(16) as pool:
            parallel = list(pool.map(lambda q: [h["product_id"] for h in searcher.search(q, None, 5)], queries))
        assert parallel == serial
        types = [None, "dress", "table lamp", None] * 50  # one batched query per shard, merged per query
        batched = searcher.search_many(np.stack(queries), types, [5, 3, 4, 2] * 50)
        assert [[h["product_id"] for h in hits] for hits in batched] == [
            [h["product_id"] for h in searcher.search(q, t, k)] for q, t, k in zip(queries, types, [5, 3, 4, 2] * 50)]
    finally:
        searcher.close()


def test_batcher_batches_concurrent_items_and_keeps_their_order():
    enc, sizes = FakeEncoder(), []

    def encode(texts):
        sizes.append(len(texts))
        time.sleep(0.01)
        return enc.encode_text(texts)

    batcher = Batcher(encode, max_batch=16)
    texts = [f"red dress {i}" for i in range(200)]
    try:
        with ThreadPoolExecutor(32) as pool:
            got = list(pool.map(batcher, texts))
        np.testing.assert_allclose(np.stack(got), enc.encode_text(texts), atol=1e-6)
        assert max(sizes) > 1 and max(sizes) <= 16 and sum(sizes) == 200
        boom = Batcher(lambda items: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            boom("x")
        boom.close()
    finally:
        batcher.close()


def test_a_two_stage_batcher_runs_the_next_batch_while_this_one_finishes():
    spans: dict[str, list] = {"fn": [], "then": []}

    def stage(name, pause, out):
        t0 = time.perf_counter()
        time.sleep(pause)
        spans[name].append((t0, time.perf_counter()))
        return out

    def then(items, doubled):
        if "bad" in items:
            raise ValueError("bad item")
        return stage("then", 0.05, [(x, d) for x, d in zip(items, doubled)])

    batcher = Batcher(lambda items: stage("fn", 0.05, [2 * x if isinstance(x, int) else x for x in items]),
                      max_batch=4, then=then)
    try:
        with ThreadPoolExecutor(12) as pool:
            got = list(pool.map(batcher, range(12)))
        assert got == [(i, 2 * i) for i in range(12)]  # each request gets its own row, in order
        assert len(spans["fn"]) >= 2
        overlaps = [a for a in spans["fn"][1:] for b in spans["then"] if a[0] < b[1] and b[0] < a[1]]
        assert overlaps, spans  # a batch's second stage ran while the next batch's first stage did
        with pytest.raises(ValueError, match="bad item"):  # the second stage's error reaches the request
            batcher("bad")
        assert batcher(5) == (5, 10)  # and the pipeline goes on
    finally:
        batcher.close()
    assert not any(t.is_alive() for t in batcher._threads)
