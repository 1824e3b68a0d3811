"""serving.backends (per-type HNSW shards in Qdrant Edge, the qdrant-client backend) and the index stage."""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.backends import IndexParams, build, load_embeddings, matrix, open_searcher
from serving.backends.schema import point_id, slugs
from serving.index import main, measure

TYPES = ["dress", "table lamp", "bag"]
DIM = 48


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def embeddings(n_per_type: int = 300, types=TYPES, version: str = "1", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_per_type * len(types)
    image = _unit(rng.normal(size=(n, DIM)))
    text = _unit(image + 0.7 * rng.normal(size=(n, DIM)))
    return pd.DataFrame({
        "product_id": [f"p{seed}-{i:05d}" for i in range(n)],
        "product_type": [types[i % len(types)] for i in range(n)],
        "title": [f"title {i}" for i in range(n)], "image_path": [f"/img/{i}.png" for i in range(n)],
        "image_embedding": list(image), "text_embedding": list(text), "fused_embedding": list(_unit(image + text)),
        "model_version": version, "event_timestamp": datetime.now(UTC)})


def params(backend: str = "edge", **kw) -> IndexParams:
    base = dict(backend=backend, url=":memory:", hnsw_m=16, hnsw_ef_construct=100, hnsw_ef=64, recall_k=10)
    return IndexParams(**{**base, **kw})


@pytest.fixture(scope="module")
def edge_index(tmp_path_factory):
    df = embeddings()
    path = tmp_path_factory.mktemp("idx") / "index"
    build(df, params(), path, log=lambda *_: None)
    searcher = open_searcher(params(), path)
    yield df, path, searcher
    searcher.close()


def test_hnsw_is_built_and_recall_is_high(edge_index, tmp_path):
    df, _, searcher = edge_index
    for t, shard in searcher._shards.items():  # a real graph for both named vectors, not brute force
        n = len(df) if t is None else int((df["product_type"] == t).sum())  # None: the all-types shard
        assert shard.info().indexed_vectors_count == 2 * n
    build(df, params(), tmp_path / "ix", log=lambda *_: None)
    opened = []

    def open_types(types):  # measuring holds one type's shard at a time
        opened.append(types)
        return open_searcher(params(), tmp_path / "ix", types=types)

    stats = measure(open_types, df, 10, 2000)
    assert opened == [[t] for t in sorted(TYPES)] + [[None]]
    assert stats["recall@k"] >= 0.9 and stats["recall@k_all_types"] >= 0.9, stats
    assert set(stats["recall@k_per_type"]) == set(TYPES)
    assert 0 < stats["latency_ms"]["p50"] <= stats["latency_ms"]["p95"]


def test_a_searcher_opened_for_one_type_counts_all_and_searches_its_own(edge_index, tmp_path):
    df = edge_index[0]
    build(df, params(), tmp_path / "ix", log=lambda *_: None)
    one = open_searcher(params(), tmp_path / "ix", types=["bag"])
    try:
        assert list(one._shards) == ["bag"] and one.types() == sorted(TYPES)
        assert {t: one.count(t) for t in TYPES} == df["product_type"].value_counts().to_dict()
        assert one.search(df["text_embedding"].iloc[0], "bag", 3)
        with pytest.raises(RuntimeError, match="not opened"):
            one.search(df["text_embedding"].iloc[0], "dress", 3)
    finally:
        one.close()


def test_exact_search_matches_numpy(edge_index):
    df, _, searcher = edge_index
    rows = df[df["product_type"] == "bag"]
    image = matrix(rows, "image_embedding")
    query = matrix(rows, "text_embedding")[3]
    expected = rows["product_id"].to_numpy()[np.argsort(-(image @ query))[:10]]
    got = [h["product_id"] for h in searcher.search(query, "bag", 10, exact=True)]
    assert got == list(expected)


def test_search_stays_in_type_and_fans_out_by_score(edge_index):
    df, _, searcher = edge_index
    assert searcher.types() == sorted(TYPES)
    row = df.iloc[4]
    own = searcher.search(row["image_embedding"], row["product_type"], 5)
    assert own[0]["product_id"] == row["product_id"] and own[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert {h["product_type"] for h in own} == {row["product_type"]}
    assert set(own[0]) == {"product_id", "score", "product_type", "title", "image_path"}
    other = next(t for t in TYPES if t != row["product_type"])
    assert all(h["product_type"] == other for h in searcher.search(row["image_embedding"], other, 20))
    merged = searcher.search(row["image_embedding"], None, 12, exact=True)
    scores = [h["score"] for h in merged]
    assert scores == sorted(scores, reverse=True) and len(merged) == 12
    everything = matrix(df, "image_embedding") @ row["image_embedding"]
    assert [h["product_id"] for h in merged] == list(df["product_id"].to_numpy()[np.argsort(-everything)[:12]])


def test_untyped_queries_ask_the_all_types_shard_alone_and_find_what_the_fan_out_finds(edge_index, tmp_path):
    df, path, searcher = edge_index
    build(df, params(all_types=False), tmp_path / "fan", log=lambda *_: None)
    assert not (tmp_path / "fan" / "_all").exists() and "all_types" not in json.loads(
        (tmp_path / "fan" / "manifest.json").read_text())
    fan = open_searcher(params(all_types=False), tmp_path / "fan")
    asked = []
    ids = searcher._ids
    searcher._ids = lambda t, requests: asked.append(t) or ids(t, requests)
    try:
        queries = matrix(df.iloc[::90], "text_embedding")
        for exact in (True, False):
            mine = searcher.search_many(queries, [None] * len(queries), [10] * len(queries), exact=exact)
            theirs = fan.search_many(queries, [None] * len(queries), [10] * len(queries), exact=exact)
            overlap = [len({h["product_id"] for h in a} & {h["product_id"] for h in b}) / 10
                       for a, b in zip(mine, theirs)]
            assert min(overlap) == 1.0 if exact else np.mean(overlap) >= 0.9, overlap
        assert asked == [None, None]  # one shard asked per batch, not one per type
        typed = searcher.search_many(queries[:2], ["bag", None], [5, 5])
        assert asked[2:] == ["bag", None] and {h["product_type"] for h in typed[0]} == {"bag"}
    finally:
        del searcher._ids
        fan.close()


def test_fused_vectors_are_searchable(edge_index):
    df, _, searcher = edge_index
    row = df.iloc[7]
    assert searcher.search(row["fused_embedding"], row["product_type"], 1, using="fused")[0]["product_id"] == \
        row["product_id"]


def test_unknown_type_and_bad_vector_raise(edge_index):
    _, _, searcher = edge_index
    with pytest.raises(ValueError, match=r"unknown product_type 'sofa'.*bag.*dress.*table lamp"):
        searcher.search(np.ones(DIM), "sofa", 3)
    with pytest.raises(ValueError, match="dims"):
        searcher.search(np.ones(DIM + 1), "bag", 3)


def test_manifest_and_layout(edge_index):
    df, path, _ = edge_index
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["types"] == {"bag": "bag", "dress": "dress", "table lamp": slugs(["table lamp"])["table lamp"]}
    assert manifest["counts"] == df["product_type"].value_counts().to_dict()
    assert manifest["model_version"] == "1" and manifest["dim"] == DIM
    assert all((path / d / "edge_config.json").exists() for d in manifest["types"].values())


def test_rebuild_over_existing_index(tmp_path):
    path = tmp_path / "index"
    build(embeddings(50), params(), path, log=lambda *_: None)
    new = embeddings(40, types=["shoe", "dress"], version="2", seed=1)
    build(new, params(), path, log=lambda *_: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temp or old dirs left behind
    searcher = open_searcher(params(), path)
    try:
        assert searcher.types() == ["dress", "shoe"] and searcher.model_version == "2"
        row = new.iloc[0]
        assert searcher.search(row["image_embedding"], row["product_type"], 1)[0]["product_id"] == row["product_id"]
    finally:
        searcher.close()


def test_types_in_any_script_colliding_names_or_one_product_are_indexed_and_searchable(tmp_path):
    df = pd.concat([embeddings(20, types=["dress", "table lamp"]),
                    embeddings(1, types=["靴", "t-shirt", "t shirt"], seed=1)])
    df.to_parquet(tmp_path / "e.parquet")
    (tmp_path / "params.yaml").write_text("index: {backend: edge, url: '', hnsw_m: 16, hnsw_ef_construct: 100, "
                                          "hnsw_ef: 64, recall_k: 10}\n")
    assert main(["--params", str(tmp_path / "params.yaml"), "--embeddings", str(tmp_path / "e.parquet"),
                 "--index", str(tmp_path / "idx"), "--receipt", str(tmp_path / "r.json"),
                 "--metrics", str(tmp_path / "m.json")]) == 0
    receipt = json.loads((tmp_path / "r.json").read_text())
    assert receipt["counts"]["靴"] == 1 and receipt["counts"]["t-shirt"] == receipt["counts"]["t shirt"] == 1
    searcher = open_searcher(params(), tmp_path / "idx")
    try:
        for t in ("靴", "t-shirt", "t shirt"):
            row = df[df["product_type"] == t].iloc[0]
            assert [h["product_id"] for h in searcher.search(row["image_embedding"], t, 5)] == [row["product_id"]]
    finally:
        searcher.close()


def test_ids_slugs_and_input_checks():
    assert point_id("sku-1") == point_id("sku-1") != point_id("sku-2")
    assert len(point_id("sku-1")) == 36
    names = slugs(["Table Lamp", "table-lamp", "table_lamp", "靴", "t-shirt", "t shirt"])
    assert len(set(names.values())) == 6 and names["table_lamp"] == "table_lamp"
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names.values()), names
    df = embeddings(5)
    with pytest.raises(ValueError, match="mixes model versions"):
        load_embeddings(df.assign(model_version=["1", "2"] * 7 + ["1"]))
    with pytest.raises(ValueError, match="repeats product_id"):
        load_embeddings(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(ValueError, match="lacks columns.*fused_embedding"):
        load_embeddings(df.drop(columns="fused_embedding"))


def test_qdrant_backend_in_memory():
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    p = params("qdrant")
    df = embeddings(60)
    with warnings.catch_warnings():  # local mode warns that it ignores hnsw_ef
        warnings.simplefilter("ignore", UserWarning)
        first = build(df, p, client=client, log=lambda *_: None)
        searcher = open_searcher(p, client=client)
        assert searcher.types() == sorted(TYPES) and searcher.model_version == "1" and searcher.dim == DIM
        row = df.iloc[5]
        hits = searcher.search(row["image_embedding"], row["product_type"], 5)
        assert hits[0]["product_id"] == row["product_id"]
        assert {h["product_type"] for h in hits} == {row["product_type"]}
        with pytest.raises(ValueError, match="known types"):
            searcher.search(row["image_embedding"], "sofa", 5)
        queries, types = np.stack(df["image_embedding"][:6].to_numpy()), [None, row["product_type"]] * 3
        singles = [searcher.search(q, t, 4) for q, t in zip(queries, types)]
        assert searcher.search_many(queries, types, [4] * 6) == singles
        second = build(embeddings(30, version="2", seed=3), p, client=client, log=lambda *_: None)
        # the running searcher keeps the collections it opened (its encoder's version) until it reloads
        assert searcher.search(row["image_embedding"], row["product_type"], 1)[0]["product_id"] == row["product_id"]
        fresh = open_searcher(p, client=client)
        assert fresh.model_version == "2"
        assert fresh.search(row["image_embedding"], row["product_type"], 1)[0]["product_id"].startswith("p3-")
        third = build(embeddings(30, version="3", seed=4), p, client=client, log=lambda *_: None)
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    assert aliases == {**{f"vlclip_{s}": third["collections"][t] for t, s in slugs(TYPES).items()},
                       "vlclip_all-types": third["all_types"]}
    names = {c.name for c in client.get_collections().collections}  # this generation and the one before
    assert names == {*third["collections"].values(), *second["collections"].values(), third["all_types"],
                     second["all_types"]}
    assert not names & {*first["collections"].values(), first["all_types"]}


def test_main_writes_receipt_and_metrics_then_verifies_instead_of_rebuilding(tmp_path, capsys):
    df = embeddings(120)
    df.to_parquet(tmp_path / "emb.parquet")
    (tmp_path / "params.yaml").write_text(
        "index:\n  backend: edge\n  url: ''\n  hnsw_m: 16\n  hnsw_ef_construct: 100\n  hnsw_ef: 64\n  recall_k: 10\n")
    receipt, metrics, index = tmp_path / "receipts" / "index.json", tmp_path / "metrics" / "index.json", tmp_path / "ix"
    args = ["--params", str(tmp_path / "params.yaml"), "--embeddings", str(tmp_path / "emb.parquet"),
            "--receipt", str(receipt), "--metrics", str(metrics)]
    with pytest.raises(ValueError, match="needs the index directory"):
        main(args)
    assert main([*args, "--index", str(index)]) == 0
    out, stats = json.loads(receipt.read_text()), json.loads(metrics.read_text())
    assert out["backend"] == "edge" and out["model_version"] == "1" and out["n_points"] == len(df)
    assert out["counts"] == {t: 120 for t in TYPES} and len(out["embeddings_sha256"]) == 64
    assert stats["recall@k"] >= 0.9 and stats["k"] == 10 and stats["build_s"] > 0
    assert stats["latency_ms"]["p95"] >= stats["latency_ms"]["p50"] > 0
    assert "recall@10" in capsys.readouterr().out
    written = receipt.read_bytes(), metrics.read_bytes()
    assert main([*args, "--index", str(index)]) == 0  # the index holds what the receipt says: verified only
    assert "nothing to do" in capsys.readouterr().out and (receipt.read_bytes(), metrics.read_bytes()) == written
    shard = index / json.loads((index / "manifest.json").read_text())["types"]["dress"]
    shutil.rmtree(shard)  # a shard lost behind the pipeline's back: rebuilt, same receipt
    assert main([*args, "--index", str(index)]) == 0
    assert "cannot open the index" in capsys.readouterr().out and receipt.read_bytes() == written[0]
    shutil.rmtree(index / "_all")  # so is the all-types shard
    assert main([*args, "--index", str(index)]) == 0
    assert "_all does not exist" in capsys.readouterr().out and (index / "_all").is_dir()


def test_a_build_removes_what_a_killed_build_left(tmp_path):
    index = tmp_path / "index"
    dead = tmp_path / ".index.build-999999999-deadbeef"  # no process has this id
    live = tmp_path / f".index.build-{os.getpid()}-cafe0000"  # a build still running: left alone
    for d in (dead, live):
        d.mkdir()
    build(embeddings(10), params(), index, log=lambda *_: None)
    assert not dead.exists() and live.exists() and (index / "manifest.json").exists()
    assert {p.name for p in tmp_path.iterdir()} == {"index", live.name}


def test_second_open_of_an_edge_index_fails_clearly(edge_index):
    _, path, _ = edge_index
    with pytest.raises(RuntimeError, match="another process"):
        open_searcher(params(), path)


def _edge_search_threads() -> int:
    n = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            n += Path(f"/proc/self/task/{tid}/comm").read_text().startswith("edge-search")
        except OSError:  # a thread that ended meanwhile
            pass
    return n


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads threads from /proc (Linux)")
def test_each_shard_searches_on_as_many_threads_as_params_say(tmp_path):
    df, one, auto = embeddings(40), params(search_threads=1), params(search_threads=0)
    build(df, one, tmp_path / "one", log=lambda *_: None)
    build(df, auto, tmp_path / "auto", log=lambda *_: None)
    before = _edge_search_threads()
    searcher = open_searcher(one, tmp_path / "one")
    try:
        assert searcher.search(df["image_embedding"][0], None, 3)[0]["product_id"] == df["product_id"][0]
        assert _edge_search_threads() - before == len(TYPES) + 1  # the setting is kept with each shard
    finally:
        searcher.close()
    searcher = open_searcher(auto, tmp_path / "auto")
    try:  # the library's default: a pool per shard sized by the CPUs, over one thread each
        assert _edge_search_threads() - before > len(TYPES)
    finally:
        searcher.close()


@pytest.mark.filterwarnings("ignore::UserWarning")  # local mode ignores hnsw_ef and says so
def test_main_qdrant_backend_from_env_url(tmp_path, monkeypatch):
    embeddings(40).to_parquet(tmp_path / "emb.parquet")
    (tmp_path / "params.yaml").write_text(
        "index:\n  backend: qdrant\n  url: ''\n  hnsw_m: 16\n"
        "  hnsw_ef_construct: 100\n  hnsw_ef: 64\n  recall_k: 5\n")
    with pytest.raises(ValueError, match="VLCLIP_QDRANT_URL"):
        main(["--params", str(tmp_path / "params.yaml"), "--embeddings", str(tmp_path / "emb.parquet"),
              "--receipt", str(tmp_path / "r.json"), "--metrics", str(tmp_path / "m.json")])
    monkeypatch.setenv("VLCLIP_QDRANT_URL", ":memory:")
    assert main(["--params", str(tmp_path / "params.yaml"), "--embeddings", str(tmp_path / "emb.parquet"),
                 "--receipt", str(tmp_path / "r.json"), "--metrics", str(tmp_path / "m.json")]) == 0
    out, stats = json.loads((tmp_path / "r.json").read_text()), json.loads((tmp_path / "m.json").read_text())
    assert out["backend"] == "qdrant" and out["n_points"] == 120 and stats["recall@k"] == 1.0  # local mode is exact
    assert set(out["collections"]) == set(TYPES)


def _changed(df: pd.DataFrame) -> pd.DataFrame:
    """A catalog change of the same model: 6 deleted, 4 re-embedded, 1 moved to another type,
    5 added to a type the index did not have."""
    out = df.drop(index=df.index[:6]).copy()
    rng = np.random.default_rng(9)
    for i in out.index[:4]:
        v = _unit(rng.normal(size=(1, DIM)))[0]
        out.at[i, "image_embedding"], out.at[i, "fused_embedding"] = v, v
    moved = out.index[10]
    out.loc[moved, "product_type"] = TYPES[0] if out.loc[moved, "product_type"] != TYPES[0] else TYPES[1]
    new = embeddings(5, types=["hat"], seed=7)
    return pd.concat([out, new], ignore_index=True)


def _ids_per_type(searcher) -> dict[str | None, set]:
    """type -> the ids its shard holds; None -> those the all-types shard holds."""
    return {t: {h["product_id"] for h in searcher.search(np.ones(DIM, np.float32), t, 1000, exact=True)}
            for t in [*searcher.types(), None]}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_same_model_catalog_change_updates_the_index_to_exactly_the_new_rows(tmp_path, capsys, monkeypatch, backend):
    monkeypatch.setenv("VLCLIP_QDRANT_URL", ":memory:")
    df = embeddings(40)
    (tmp_path / "params.yaml").write_text(
        f"index:\n  backend: {backend}\n  url: ''\n  hnsw_m: 16\n  hnsw_ef_construct: 100\n  hnsw_ef: 64\n"
        "  recall_k: 10\n")
    args = ["--params", str(tmp_path / "params.yaml"), "--embeddings", str(tmp_path / "emb.parquet"),
            "--receipt", str(tmp_path / "r.json"), "--metrics", str(tmp_path / "m.json"),
            "--index", str(tmp_path / "ix"), "--state", str(tmp_path / "rows.parquet")]
    if backend == "qdrant":  # one in-process server for both runs
        from qdrant_client import QdrantClient

        client = QdrantClient(":memory:")
        monkeypatch.setattr("serving.backends.qdrant.make_client", lambda p: client)
    df.to_parquet(tmp_path / "emb.parquet")
    assert main(args) == 0 and "rebuilt" in capsys.readouterr().out
    changed = _changed(df)
    changed.to_parquet(tmp_path / "emb.parquet")
    assert main(args) == 0
    assert "updated: 10 upserted, 7 deleted" in capsys.readouterr().out  # 4 + 1 moved + 5 new; 6 + 1 moved
    p = params(backend)
    searcher = open_searcher(p, tmp_path / "ix", client if backend == "qdrant" else None)
    try:
        held = _ids_per_type(searcher)
        want = changed.groupby("product_type")["product_id"].apply(set).to_dict()
        assert held == {**want, None: set(changed["product_id"])}
        row = changed.iloc[0]  # a re-embedded product is found by its new vector
        assert searcher.search(row["image_embedding"], row["product_type"], 1)[0]["product_id"] == row["product_id"]
    finally:
        searcher.close()
    assert json.loads((tmp_path / "r.json").read_text())["counts"] == {t: len(v) for t, v in want.items()}
    changed.assign(model_version="2").to_parquet(tmp_path / "emb.parquet")  # a new champion: full rebuild
    assert main(args) == 0 and "rebuilt" in capsys.readouterr().out


def test_an_update_that_only_deletes_keeps_the_rest_of_the_type(tmp_path):
    from serving.backends.edge import update_edge

    df = embeddings(30)
    build(df, params(), tmp_path / "ix", log=lambda *_: None)
    gone = df[df["product_type"] == "bag"].head(3)
    update_edge(df.drop(index=gone.index), [], gone[["product_id", "product_type"]], params(), tmp_path / "ix",
                log=lambda *_: None)
    searcher = open_searcher(params(), tmp_path / "ix")
    try:
        assert searcher.count("bag") == 27 and searcher.count("dress") == 30 and searcher.count(None) == 87
    finally:
        searcher.close()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("backend", ["edge", "qdrant"])
def test_an_update_adds_the_all_types_shard_an_index_lacks_with_every_product(tmp_path, backend):
    from qdrant_client import QdrantClient

    from serving.backends import BACKENDS

    df, client = embeddings(30), QdrantClient(":memory:")
    target = tmp_path / "ix" if backend == "edge" else client
    BACKENDS[backend].build(df, params(backend, all_types=False), target, lambda *_: None)
    gone = df.head(2)[["product_id", "product_type"]]
    BACKENDS[backend].update(df.iloc[2:], [], gone, params(backend), target, lambda *_: None)
    searcher = BACKENDS[backend].open(params(backend), target, None)
    try:
        assert searcher.all_types and _ids_per_type(searcher)[None] == set(df["product_id"].iloc[2:])
    finally:
        searcher.close()


def _chunked(df: pd.DataFrame, rows: int):
    return lambda: (df.iloc[i:i + rows] for i in range(0, len(df), rows))


def test_an_index_built_from_chunks_equals_one_built_from_the_whole_table(tmp_path):
    """Row groups of 7, spilled per type and built a shard at a time: the same points and answers, and
    nothing left beside the index."""
    from serving.backends import Embeddings

    types = ["dress", "table lamp", "bag", "mug", "hat"]
    df = embeddings(40, types=types)
    build(df, params(), tmp_path / "whole", log=lambda *_: None)
    table = Embeddings.scan(_chunked(df, 7))
    assert table.n == len(df) and table.counts == {t: 40 for t in types} and table.dim == DIM
    build(table, params(), tmp_path / "chunks", log=lambda *_: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks", "whole"]
    whole, chunks = open_searcher(params(), tmp_path / "whole"), open_searcher(params(), tmp_path / "chunks")
    try:
        assert {t: chunks.count(t) for t in types} == {t: 40 for t in types}
        for _, row in df.iloc[::17].iterrows():
            assert chunks.search(row["text_embedding"], row["product_type"], 5) == \
                whole.search(row["text_embedding"], row["product_type"], 5)
    finally:
        whole.close()
        chunks.close()
    assert table.take([0, 8, 199])["product_id"].tolist() == df["product_id"].iloc[[0, 8, 199]].tolist()


def test_a_chunked_scan_finds_what_spans_chunks():
    from serving.backends import Embeddings

    df = embeddings(5)
    with pytest.raises(ValueError, match="repeats product_id"):
        Embeddings.scan(_chunked(pd.concat([df, df.iloc[:1]], ignore_index=True), 4))
    with pytest.raises(ValueError, match="mixes model versions"):
        Embeddings.scan(_chunked(df.assign(model_version=["1"] * 8 + ["2"] * 7), 4))
    short = df.assign(image_embedding=[v[:DIM // 2] if i >= 8 else v for i, v in enumerate(df["image_embedding"])])
    with pytest.raises(ValueError, match=f"not {DIM}-dimensional for 4 product"):
        Embeddings.scan(_chunked(short, 4))
