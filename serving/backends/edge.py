"""Embedded backend of the index stage: one Qdrant Edge shard per product type, in process.

Layout: `<path>/<type_slug>/` per type plus `<path>/manifest.json` (model_version, dim,
types -> shard dir, counts). A rebuild writes a sibling temp dir and swaps it in by rename.
An Edge shard's WAL admits one open handle, so one process serves an index; several workers
or machines use the qdrant backend (serving/backends/qdrant.py) instead.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd

from serving.backends.schema import (
    MANIFEST,
    PAYLOAD,
    VECTORS,
    IndexParams,
    Searcher,
    load_embeddings,
    matrix,
    point_id,
    slugs,
)
from vlclip.receipt import owner_gone

_BATCH = 512


def target(params: IndexParams, path: str | Path | None, client=None) -> Path:
    """The edge index lives in a directory; the index stage's --index names it (dvc.yaml)."""
    if path is None:
        raise ValueError("index.backend 'edge' needs the index directory (the index stage's --index)")
    return Path(path)


def _edge_config(dim: int, params: IndexParams):
    from qdrant_edge import Distance, EdgeConfig, EdgeOptimizersConfig, EdgeVectorParams, HnswIndexConfig

    # Both thresholds are in KB (default 10000): left alone, a few thousand products never get a
    # graph and every search is brute force. 1 KB forces a real HNSW graph for any type.
    return EdgeConfig(vectors={name: EdgeVectorParams(size=dim, distance=Distance.Cosine) for name in VECTORS},
                      hnsw_config=HnswIndexConfig(m=params.hnsw_m, ef_construct=params.hnsw_ef_construct,
                                                  full_scan_threshold=1),
                      optimizers=EdgeOptimizersConfig(indexing_threshold=1, default_segment_number=1))


def _build_shard(rows: pd.DataFrame, shard_dir: Path, params: IndexParams, dim: int) -> None:
    from qdrant_edge import EdgeShard

    shard = EdgeShard.create(str(shard_dir), _edge_config(dim, params))
    try:
        _upsert_points(shard, rows)
        shard.optimize()  # blocking: builds the HNSW graphs
        info = shard.info()
        # Near the 1 KB indexing threshold (a type with a handful of products) a shard may get no graph
        # and is searched exactly, which is what a graph would approximate.
        graph = len(rows) * dim * 4 >= 2048
        if info.points_count != len(rows) or (graph and info.indexed_vectors_count < len(rows) * len(VECTORS)):
            raise RuntimeError(f"shard {shard_dir.name}: {info.points_count} points, "
                               f"{info.indexed_vectors_count} indexed vectors; expected {len(rows)} HNSW-indexed")
        shard.flush()
    finally:
        shard.close()


def _upsert_points(shard, rows: pd.DataFrame) -> None:
    from qdrant_edge import Point, UpdateOperation

    if rows.empty:
        return
    vecs = {name: matrix(rows, col) for name, col in VECTORS.items()}
    payloads = rows[PAYLOAD].astype(str).to_dict("records")
    for start in range(0, len(rows), _BATCH):
        shard.update(UpdateOperation.upsert_points([
            Point(id=point_id(payloads[i]["product_id"]), vector={n: v[i] for n, v in vecs.items()},
                  payload=payloads[i]) for i in range(start, min(start + _BATCH, len(rows)))]))


def build_edge(df: pd.DataFrame, params: IndexParams, path: Path, log=print) -> dict:
    """Build every type's shard in a sibling temp dir, then swap it in (EdgeShard.create refuses a
    dir that already holds segments, and a half-built index must never replace a good one)."""
    df = load_embeddings(df)
    path = Path(path)
    dim = len(df["image_embedding"].iloc[0])
    type_dirs = slugs(df["product_type"].astype(str).unique().tolist())
    remove_stale(path, log)
    tmp = _sibling(path, "build")
    try:
        counts = {}
        for t, slug in type_dirs.items():
            rows = df[df["product_type"].astype(str) == t]
            _build_shard(rows, tmp / slug, params, dim)
            counts[t] = len(rows)
            log(f"index: {t}: {len(rows)} points -> {slug}/")
        manifest = {"backend": "edge", "model_version": str(df["model_version"].iloc[0]), "dim": dim,
                    "types": type_dirs, "counts": counts}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _swap(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def update_edge(df: pd.DataFrame, upsert: list[str], deletes: pd.DataFrame, params: IndexParams, path: Path,
                log=print) -> dict:
    """Apply a catalog change of the same model: copy the index beside itself, then in each type's
    copied shard delete and upsert only the changed points (a type that did not change is copied as
    it is, a new type is built), and swap the copy in like a rebuild. The serving index is never
    written to; the copy is what changes."""
    from qdrant_edge import EdgeShard, UpdateOperation

    df, path = load_embeddings(df), Path(path)
    old, dim = read_manifest(path), len(df["image_embedding"].iloc[0])
    types = df["product_type"].astype(str)
    type_dirs, changed = slugs(types.unique().tolist()), df[df["product_id"].astype(str).isin(set(upsert))]
    if not upsert and deletes.empty and type_dirs == old["types"]:
        log("index: no product changed; the index stays as it is")
        return old
    remove_stale(path, log)
    tmp = _sibling(path, "build")
    try:
        for t, slug in type_dirs.items():
            ups, dels = changed[changed["product_type"].astype(str) == t], deletes[deletes["product_type"] == t]
            if t not in old["types"]:
                _build_shard(df[types == t], tmp / slug, params, dim)
                continue
            shutil.copytree(path / old["types"][t], tmp / slug)
            if len(ups) or len(dels):
                shard = EdgeShard.load(str(tmp / slug))
                try:
                    if len(dels):
                        shard.update(UpdateOperation.delete_points([point_id(i) for i in dels["product_id"]]))
                    _upsert_points(shard, ups)
                    shard.optimize()
                    shard.flush()
                finally:
                    shard.close()
            log(f"index: {t}: {len(ups)} upserted, {len(dels)} deleted -> {slug}/")
        manifest = {"backend": "edge", "model_version": str(df["model_version"].iloc[0]), "dim": dim,
                    "types": type_dirs, "counts": types.value_counts().sort_index().to_dict()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _swap(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _sibling(path: Path, kind: str) -> Path:
    """A temp dir beside the index, named after this process so a later build knows when it is debris."""
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_stale(path: Path, log=print) -> list[Path]:
    """Remove the temp dirs a killed build or swap left beside the index (their process is gone)."""
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*-*"):
        kind, _, rest = tmp.name.removeprefix(f".{path.name}.").partition("-")
        if kind in ("build", "old") and owner_gone(rest.split("-")[0]):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    if removed:
        log(f"index: removed {len(removed)} temp dir(s) left by a killed build")
    return removed


def _swap(new: Path, path: Path) -> None:
    old = _sibling(path, "old")
    if path.exists():
        path.rename(old)
    new.rename(path)
    shutil.rmtree(old, ignore_errors=True)


class EdgeSearcher(Searcher):
    def __init__(self, path: Path, hnsw_ef: int):
        from qdrant_edge import EdgeShard

        self.manifest = read_manifest(path)
        self._shards = {}
        for t, d in self.manifest["types"].items():
            try:
                self._shards[t] = EdgeShard.load(str(Path(path) / d))
            except Exception as exc:  # an Edge shard's WAL admits one open handle: one serving process
                self.close()
                raise RuntimeError(f"cannot open index shard {Path(path) / d} ({exc}); is another process "
                                   "serving it? For several workers use index.backend: qdrant") from exc
        super().__init__(list(self._shards), self.manifest["model_version"], int(self.manifest["dim"]), hnsw_ef)

    def _ids(self, product_type, vectors, ks, using, exact):
        from qdrant_edge import Query, QueryBatchRequest, QueryRequest, SearchParams

        params = SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)
        res = self._shards[product_type].query_batch(QueryBatchRequest([
            QueryRequest(limit=k, query=Query.Nearest(v, using=using), with_payload=False, params=params)
            for v, k in zip(vectors.tolist(), ks)]))
        return [[(p.id, p.score) for p in points] for points in res]

    def _payloads(self, product_type, point_ids):
        return {r.id: r.payload for r in self._shards[product_type].retrieve(point_ids, True, False)}

    def count(self, product_type: str) -> int:
        return int(self._shards[product_type].info().points_count)

    def close(self) -> None:
        for shard in self._shards.values():
            shard.close()
        self._shards = {}


def read_manifest(path: Path) -> dict:
    manifest_file = Path(path) / MANIFEST
    if not manifest_file.exists():
        raise FileNotFoundError(f"no index manifest at {manifest_file}; run the index stage")
    return json.loads(manifest_file.read_text())


def manifest_version(path: Path) -> str:
    return str(read_manifest(path)["model_version"])


def open_edge(params: IndexParams, path: Path) -> EdgeSearcher:
    return EdgeSearcher(path, params.hnsw_ef)
