"""serving.app + serving.features on a real Edge index and a real throw-away Feast repo.

The encoder is a deterministic fake: a text is the sum of per-word hash vectors, an image is the
hash vector of its nearest palette colour name plus a small per-shade term. So "red" text lands
on red images, and two shades of one colour are each other's nearest neighbours.
"""
from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from serving.app import ServicePaths, ServiceState, build_state, create_app, read_products
from serving.backends import IndexParams, build, open_searcher
from serving.features import ProductFeatures, unknown_ids

DIM = 32
PALETTE = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 50, 220), "yellow": (230, 220, 30)}
TYPES = ["dress", "table lamp"]
VERSION = "7"
UNMATERIALIZED = "table lamp-blue-1"  # in the index and the product table, not in Feast's online store


def _word(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.md5(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=DIM)


def _norm(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


class FakeEncoder:
    dim = DIM

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return _norm(np.stack([sum(_word(w) for w in t.lower().split()) for t in texts]))

    def encode_images(self, images: list) -> np.ndarray:
        out = []
        for im in images:
            rgb = np.asarray(im.convert("RGB"), dtype=float).reshape(-1, 3).mean(0)
            name = min(PALETTE, key=lambda c: np.sum((np.array(PALETTE[c]) - rgb) ** 2))
            out.append(_word(name) + 0.3 * _word(str(np.round(rgb).astype(int).tolist())))
        return _norm(np.stack(out))


def _png(rgb: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), rgb).save(buf, format="PNG")
    return buf.getvalue()


def make_catalog(root: Path) -> pd.DataFrame:
    """2 types x 4 colours x 2 shades = 16 products with images and embeddings."""
    enc, rows = FakeEncoder(), []
    (root / "images").mkdir(parents=True)
    for t in TYPES:
        for colour, rgb in PALETTE.items():
            for shade in range(2):
                pid = f"{t}-{colour}-{shade}"
                path = root / "images" / f"{pid}.png"
                path.write_bytes(_png(tuple(max(0, c - 25 * shade) for c in rgb)))
                rows.append({"product_id": pid, "product_type": t, "title": f"{colour} {t} {shade}",
                             "image_path": str(path)})
    df = pd.DataFrame(rows)
    image = enc.encode_images([Image.open(p) for p in df["image_path"]])
    text = enc.encode_text(df["title"].tolist())
    return df.assign(image_embedding=list(image), text_embedding=list(text), fused_embedding=list(_norm(image + text)),
                     model_version=VERSION, event_timestamp=datetime.now(UTC) - timedelta(minutes=5))


def make_feast_repo(repo: Path, table: pd.DataFrame) -> Path:
    """A tiny Feast repo with the names feature_repo/ declares; materializes `table`."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, String

    repo.mkdir(parents=True)
    table.to_parquet(repo / "products.parquet")
    (repo / "feature_store.yaml").write_text(
        f"project: vlclip_test\nprovider: local\nregistry: {repo / 'registry.db'}\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\noffline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\nauth:\n  type: no_auth\n")
    product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING)
    src = FileSource(name="product_src", path=str(repo / "products.parquet"), timestamp_field="event_timestamp")
    emb = FeatureView(name="product_embeddings", entities=[product], ttl=timedelta(days=30), source=src,
                      schema=[Field(name=n, dtype=Array(Float32))
                              for n in ("image_embedding", "text_embedding", "fused_embedding")]
                      + [Field(name="model_version", dtype=String)])
    att = FeatureView(name="product_attributes", entities=[product], ttl=timedelta(days=30), source=src,
                      schema=[Field(name="product_type", dtype=String), Field(name="title", dtype=String)])
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / "feature_store.yaml")
    store.apply([product, src, emb, att, FeatureService(name="ranker_features", features=[emb, att])])
    now = datetime.now(UTC)
    store.materialize(start_date=now - timedelta(days=1), end_date=now)
    return repo


INDEX = IndexParams(backend="edge", url="", hnsw_m=16, hnsw_ef_construct=100, hnsw_ef=64, recall_k=10)
INDEX_DIR = "data/index"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("svc")
    table = make_catalog(root)
    (root / "data" / "embeddings").mkdir(parents=True)
    table.to_parquet(root / "data" / "embeddings" / "products.parquet")
    build(table, INDEX, root / INDEX_DIR, log=lambda *_: None)
    make_feast_repo(root / "feature_repo", table[table["product_id"] != UNMATERIALIZED])
    return root, table


@pytest.fixture(scope="module")
def client(world):
    root, table = world
    products, version = read_products(root / "data" / "embeddings" / "products.parquet", root)

    def load_state() -> ServiceState:
        return ServiceState(encoder=FakeEncoder(), searcher=open_searcher(INDEX, root / INDEX_DIR),
                            features=ProductFeatures(root / "feature_repo"), products=products,
                            model_version=version, default_k=5)

    with TestClient(create_app(load_state)) as c:
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


def test_healthz(client, world):
    assert client.get("/healthz").json() == {"status": "ok", "model_version": VERSION, "n_products": len(world[1])}


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
    assert bad.status_code == 400 and "decode" in bad.json()["detail"]
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
    assert missing.status_code == 404 and "Feast" in missing.json()["detail"]


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

    def fake_champion(uri, model_name="vl-clip", alias="champion"):
        calls.append((uri, model_name, alias))
        return FakeEncoder(), champion_version

    monkeypatch.setattr(registry, "load_champion", fake_champion, raising=False)
    # the service fixture holds data/index open, and an Edge shard admits one handle: use a second index
    build(table, INDEX, root / "data" / "index_b", log=lambda *_: None)
    paths = ServicePaths(embeddings=root / "data" / "embeddings" / "products.parquet", index=root / "data" / "index_b",
                         feature_repo=root / "feature_repo")
    params = {"index": dict(INDEX.__dict__), "feast": {"config": "feature_store.yaml"},
              "mlflow": {"tracking_uri": "sqlite:///mlflow/mlflow.db", "artifact_root": "mlflow/artifacts",
                         "model_name": "vl-clip"},
              "serve": {"default_k": 3}}
    monkeypatch.delenv("VLCLIP_MLFLOW_URI", raising=False)
    champion_version = VERSION
    state = build_state(params, paths, root)
    try:
        assert calls == [(f"sqlite:///{root}/mlflow/mlflow.db", "vl-clip", "champion")]
        assert state.model_version == VERSION and state.default_k == 3 and len(state.products) == len(table)
        assert state.searcher.types() == TYPES
        assert state.features.embedding("dress-red-0") is not None
    finally:
        state.searcher.close()
    champion_version = "8"
    with pytest.raises(RuntimeError, match="model versions disagree"):
        build_state(params, paths, root)
