"""serving.app + serving.features on a real Edge index and a real throw-away Feast repo, with the
fake encoder of service_world (colour words land on images of that colour)."""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service_world import (
    FELL_BACK,
    INDEX,
    PROVENANCE,
    TYPES,
    UNMATERIALIZED,
    VERSION,
    FakeEncoder,
    _png,
    loader,
    make_world,
    wait_ready,
)
from serving.app import ServicePaths, build_state, create_app
from serving.backends import build
from serving.features import ProductFeatures, unknown_ids


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("svc")
    return root, make_world(root)


@pytest.fixture(scope="module")
def client(world):
    with TestClient(create_app(loader(world[0]))) as c:
        wait_ready(c)
        yield c


def test_features_lookup(world):
    root, table = world
    pf = ProductFeatures(root / "feature_repo")
    row = table.set_index("product_id").loc["dress-red-0"]
    np.testing.assert_allclose(pf.embedding("dress-red-0"), row["fused_embedding"], atol=1e-6)
    np.testing.assert_allclose(pf.embedding("dress-red-0", "image_embedding"), row["image_embedding"], atol=1e-6)
    assert pf.embedding("no-such-product") is None and pf.embedding(UNMATERIALIZED) is None
    with pytest.raises(ValueError, match="unknown embedding"):
        pf.embedding("dress-red-0", "title")
    df = pf.lookup(["table lamp-green-1", "nope", "dress-red-0"])
    assert df["product_id"].tolist() == ["table lamp-green-1", "nope", "dress-red-0"]
    assert df["title"].tolist()[0] == "green table lamp 1" and df["title"].isna().tolist() == [False, True, False]
    assert {"image_embedding", "text_embedding", "fused_embedding", "model_version", "product_type"} <= set(df)
    assert unknown_ids(df) == ["nope"]
    assert pf.lookup(["dress-red-0"], ["product_attributes:title"]).columns.tolist() == ["product_id", "title"]


def test_a_product_shows_its_refined_query_and_crop_box(client):
    r = client.get("/products/dress-red-0")
    assert r.status_code == 200, r.text
    assert r.json() == {"product_id": "dress-red-0", "product_type": "dress", "title": "red dress 0",
                        "query": "a red dress", "box": [16, 8, 48, 40], "fallback": False, "model_version": VERSION}
    assert client.get(f"/products/{FELL_BACK}").json()["fallback"] is True
    src = client.get("/images/dress-red-0/source")
    assert src.status_code == 200 and Image.open(io.BytesIO(src.content)).size == (64, 48)
    assert src.headers["x-model-version"] == VERSION
    for url in ("/products/nope", "/images/nope/source"):
        assert client.get(url).status_code == 404 and "nope" in client.get(url).json()["detail"]


def test_healthz_and_readyz(client, world):
    assert client.get("/healthz").json() == {"status": "ok", "model_version": VERSION}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready" and ready.json()["model_version"] == VERSION
    assert client.head("/healthz").status_code == 200 and client.head("/readyz").status_code == 200


def test_text_search_contract_and_type_filter(client):
    res = client.post("/search", json={"query": "red", "product_type": "dress", "k": 4})
    assert res.status_code == 200
    body = res.json()
    assert set(body) == {"results", "model_version"} and body["model_version"] == VERSION
    results = body["results"]
    assert len(results) == 4 and all(set(r) == {"product_id", "score", "product_type", "title"} for r in results)
    assert {r["product_type"] for r in results} == {"dress"}
    assert {r["product_id"] for r in results[:2]} == {"dress-red-0", "dress-red-1"}
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_text_search_all_types_and_default_k(client):
    results = client.post("/search", json={"query": "blue"}).json()["results"]
    assert len(results) == 5  # the state's default_k
    assert {r["product_id"] for r in results[:4]} == {f"{t}-blue-{s}" for t in TYPES for s in range(2)}


@pytest.mark.parametrize("body, status, words", [
    ({"query": "   "}, 422, "empty"),
    ({"query": "red", "product_type": "sofa"}, 422, "known types"),
    ({"query": "red", "k": 0}, 422, "k"),
    ({"product_type": "dress"}, 422, "query"),
])
def test_text_search_errors(client, body, status, words):
    res = client.post("/search", json=body)
    assert res.status_code == status and words in str(res.json()["detail"])


def test_image_search(client):
    res = client.post("/search/image", files={"file": ("q.png", _png((215, 35, 35)), "image/png")},
                      data={"product_type": "table lamp", "k": "3"})
    assert res.status_code == 200
    results = res.json()["results"]
    assert len(results) == 3 and {r["product_type"] for r in results} == {"table lamp"}
    assert {r["product_id"] for r in results[:2]} == {"table lamp-red-0", "table lamp-red-1"}
    anywhere = client.post("/search/image", files={"file": ("q.png", _png((30, 180, 40)), "image/png")}).json()
    assert anywhere["results"][0]["product_id"] in {"dress-green-0", "table lamp-green-0"}


def test_image_search_errors(client):
    bad = client.post("/search/image", files={"file": ("q.png", b"not an image", "image/png")})
    assert bad.status_code == 400 and "not an image" in bad.json()["detail"]
    res = client.post("/search/image", files={"file": ("q.png", _png((1, 2, 3)), "image/png")},
                      data={"product_type": "sofa"})
    assert res.status_code == 422 and "known types" in res.json()["detail"]


def test_similar_reads_feast_and_excludes_self(client):
    res = client.get("/products/dress-yellow-0/similar", params={"k": 3})
    assert res.status_code == 200
    body = res.json()
    ids = [r["product_id"] for r in body["results"]]
    assert len(ids) == 3 and "dress-yellow-0" not in ids and ids[0] == "dress-yellow-1"
    assert {r["product_type"] for r in body["results"]} == {"dress"} and body["product_type"] == "dress"
    assert client.get("/products/nope/similar").status_code == 404
    missing = client.get(f"/products/{UNMATERIALIZED}/similar")  # indexed, but Feast has no row for it
    assert missing.status_code == 404 and "online store" in missing.json()["detail"]


def test_concurrent_similar_requests_share_one_online_read(client):
    """/similar requests that queue while an online read runs are read together in the next one: one
    Feast call for all of them, each request still with its own answer (None: no vector stored)."""
    with client.app.state.live.use() as st:
        real, calls, gate = st.features.embeddings, [], threading.Event()

        def gated(ids, name):
            calls.append(list(ids))
            gate.wait(30)
            return real(ids, name)

        st.features.embeddings = gated
        try:
            first = st.similar("dress-red-0", "dress", 3)
            deadline = time.monotonic() + 30
            while not calls and time.monotonic() < deadline:
                time.sleep(0.01)
            asked = [("dress-blue-0", "dress"), (UNMATERIALIZED, "table lamp"), ("table lamp-green-1", "table lamp")]
            rest = [st.similar(pid, t, 3) for pid, t in asked]
            gate.set()
            results = [f.result(30) for f in (first, *rest)]
        finally:
            del st.features.embeddings  # the class's method again
    assert calls == [["dress-red-0"], [pid for pid, _ in asked]]
    assert results[0][0]["product_id"] == "dress-red-0" and results[1][0]["product_id"] == "dress-blue-0"
    assert results[2] is None
    assert {h["product_type"] for h in results[3]} == {"table lamp"}


def test_images_and_page(client, world):
    root, _ = world
    res = client.get("/images/dress-red-1")
    assert res.status_code == 200 and res.content == (root / "images" / "dress-red-1.png").read_bytes()
    assert client.get("/images/nope").status_code == 404
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    text = page.text
    assert '<option value="dress">' in text and '<option value="table lamp">' in text
    assert "/images/" in text and "/search/image" in text and 'type="file"' in text
    assert "src=\"http" not in text and "href=\"http" not in text  # no CDN assets
    assert 'id="legend"' in text and "cosine similarity" in text  # the page says what its score is


def test_build_state_loads_champion_and_checks_versions(world, monkeypatch):
    import registry

    root, table = world
    calls = []

    def fake_load(uri, tracking):
        calls.append((uri, tracking))
        return FakeEncoder()

    champion = {"version": VERSION}
    monkeypatch.setattr(registry, "champion_version", lambda uri, name: champion["version"])
    monkeypatch.setattr(registry, "load_encoder_uri", fake_load)
    # the service fixture holds data/index open, and an Edge shard admits one handle: use a second index
    build(table, INDEX, root / "data" / "index_b", log=lambda *_: None)
    paths = ServicePaths(embeddings=root / "data" / "embeddings" / "products.parquet", index=root / "data" / "index_b",
                         feature_repo=root / "feature_repo", provenance=PROVENANCE)  # relative: taken from root
    params = {"index": dict(INDEX.__dict__), "feast": {"config": "feature_store.yaml"},
              "mlflow": {"tracking_uri": "sqlite:///mlflow/mlflow.db", "artifact_root": "mlflow/artifacts",
                         "model_name": "vl-clip"},
              "serve": {"default_k": 3, "encode_process": False}}  # the fake encoder loads in process only
    monkeypatch.delenv("VLCLIP_MLFLOW_URI", raising=False)
    state = build_state(params, paths, root)
    try:
        assert calls == [(f"models:/vl-clip/{VERSION}", f"sqlite:///{root}/mlflow/mlflow.db")]
        assert state.model_version == VERSION and state.default_k == 3 and len(state.products) == len(table)
        assert state.searcher.types() == TYPES
        assert state.features.embedding("dress-red-0") is not None
        assert state.details.at["dress-red-0", "query"] == "a red dress"
        assert Path(state.details.at["dress-red-0", "source_path"]).is_file()
    finally:
        state.close()
    champion["version"] = "8"
    with pytest.raises(RuntimeError, match="model versions disagree"):
        build_state(params, paths, root)
    assert len(calls) == 1  # refused before any model was loaded


SEARCH_BODIES = [  # (raw body, content type): well-formed, refused by the checks, or not the body model
    (b'{"query": "red", "product_type": "dress", "k": 4}', "application/json"),
    (b'{"query": "blue"}', "application/json"),
    (b'{"query": "RED", "product_type": "DRESS", "extra": 1}', "application/json; charset=utf-8"),
    (b'{"query": "green", "product_type": null}', "application/json"),
    (b'{"query": "   "}', "application/json"),
    (b'{"query": "red", "product_type": "sofa"}', "application/json"),
    (b'{"query": "red", "k": "4"}', "application/json"),
    (b'{"query": "red", "k": 0}', "application/json"),
    (b'{"query": "red", "k": true}', "application/json"),
    (b'{"query": "red", "k": NaN}', "application/json"),
    (b'{"product_type": "dress"}', "application/json"),
    (b'[1, 2]', "application/json"),
    (b'{"query": ', "application/json"),
    (b'{"query": "red"}', "text/plain"),
]


def test_well_formed_searches_skip_the_route_and_answer_as_it_does(tmp_path, monkeypatch):
    """serving.fastpath answers a well-formed /search body itself and hands anything else to the
    route: every body gets the same status and JSON with it and without it, and its requests count
    under the /search route in the metrics."""
    import sys

    import serving.app as app_module
    from serving.observe import samples

    make_world(tmp_path)
    real, calls = app_module.answer_search, {"now": None}

    async def spy(*args):  # who asked: FastSearch.__call__ or the route's `search`
        if calls["now"] is not None:
            calls["now"].append(sys._getframe(1).f_code.co_name)
        return await real(*args)

    monkeypatch.setattr(app_module, "answer_search", spy)
    answers, counted = {}, {}
    for fast in (True, False):
        with TestClient(create_app(loader(tmp_path), fast_search=fast)) as c:
            wait_ready(c)
            answers[fast] = []
            for body, content_type in SEARCH_BODIES:
                calls["now"] = []
                res = c.post("/search", content=body, headers={"content-type": content_type})
                answers[fast].append((res.status_code, res.json(), calls["now"]))
            calls["now"] = None
            counted[fast] = samples(c.get("/metrics").text)
    assert [a[:2] for a in answers[True]] == [a[:2] for a in answers[False]]
    assert [a[0] for a in answers[True][:4]] == [200] * 4 and [a[0] for a in answers[True][4:6]] == [422] * 2
    assert [a[2] for a in answers[True][:4]] == [["__call__"]] * 4               # answered without the route
    assert [a[2] for a in answers[True][4:6]] == [["__call__", "search"]] * 2    # refused by the route's checks
    assert all(a[2] in (["search"], []) for a in answers[True][6:])              # the route read them
    assert all(a[2] in (["search"], []) for a in answers[False])
    for fast in (True, False):
        assert sum(v for (name, labels), v in counted[fast].items()
                   if name == "vlclip_requests_total" and ("route", "/search") in labels) == len(SEARCH_BODIES)
