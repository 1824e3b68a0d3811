"""Embedded backend of the index stage: one Qdrant Edge shard per product type, in process; the
search side is serving/backends/edge_search.py.

Layout: `<path>/<type_slug>/` per type, `<path>/_all/` over every product (`index.all_types`), plus
`<path>/manifest.json` (model_version, dim, types -> shard dir, counts, all_types -> its dir). A
rebuild writes a sibling temp dir and swaps it in by rename.
An Edge shard's WAL admits one open handle, so one process serves an index; several workers
or machines use the qdrant backend (serving/backends/qdrant.py) instead.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from serving.backends.edge_search import read_manifest
from serving.backends.schema import (
    ALL_TYPES,
    MANIFEST,
    PAYLOAD,
    VECTORS,
    IndexParams,
    matrix,
    point_id,
    slugs,
)
from serving.table import Embeddings, as_table
from vlclip.receipt import owner_gone
from vlclip.tables import read_frames

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
    # Each shard owns a search pool, one thread per CPU by default, which reads segments in parallel;
    # a shard here is one segment, so the pool only hands each search to another thread (and a
    # process serving many types would hold types x CPUs threads). The config is kept with the shard.
    return EdgeConfig(vectors={name: EdgeVectorParams(size=dim, distance=Distance.Cosine) for name in VECTORS},
                      hnsw_config=HnswIndexConfig(m=params.hnsw_m, ef_construct=params.hnsw_ef_construct,
                                                  full_scan_threshold=1),
                      optimizers=EdgeOptimizersConfig(indexing_threshold=1, default_segment_number=1),
                      max_search_threads=params.search_threads or None)


def _check_shard(shard, shard_dir: Path, n: int, dim: int) -> None:
    info = shard.info()
    # Near the 1 KB indexing threshold (a type with a handful of products) a shard may get no graph
    # and is searched exactly, which is what a graph would approximate.
    graph = n * dim * 4 >= 2048
    if info.points_count != n or (graph and info.indexed_vectors_count < n * len(VECTORS)):
        raise RuntimeError(f"shard {shard_dir.name}: {info.points_count} points, "
                           f"{info.indexed_vectors_count} indexed vectors; expected {n} HNSW-indexed")


def _build_shards(table: Embeddings, types: dict[str, str], root: Path, params: IndexParams,
                  rows: Callable[[set[str]], Iterable[pd.DataFrame]] | None = None, all_types: bool = False) -> None:
    """A new shard per type under root/<slug>, and with `all_types` one over every product under
    root/_all: one pass over the table spills each type's rows to a file of its own, then the shards
    are filled, HNSW-built, checked and closed one at a time, so the process holds a row group and
    one shard, never the catalog's."""
    spill = root.with_name(f"{root.name}.spill")
    try:
        files = _spill((rows or (lambda ts: table.rows(types=ts)))(set(types)), types, spill)
        for t, slug in types.items():
            _fill(root / slug, table.dim, params, read_frames(files[t]) if t in files else [], table.counts[t])
        if all_types:
            _fill(root / ALL_TYPES, table.dim, params, (f for path in files.values() for f in read_frames(path)),
                  sum(table.counts[t] for t in types))
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _fill(shard_dir: Path, dim: int, params: IndexParams, frames: Iterable[pd.DataFrame], n: int) -> None:
    """A new shard in shard_dir holding the rows of `frames` (n of them), its HNSW graphs built."""
    from qdrant_edge import EdgeShard

    shard = EdgeShard.create(str(shard_dir), _edge_config(dim, params))
    try:
        for part in frames:
            _upsert_points(shard, part)
        shard.optimize()  # blocking: builds the HNSW graphs
        _check_shard(shard, shard_dir, n, dim)
        shard.flush()
    finally:
        shard.close()


def _spill(chunks: Iterable[pd.DataFrame], types: dict[str, str], folder: Path) -> dict[str, Path]:
    """Each type's rows of the chunks into <folder>/<slug>.parquet, a row group per chunk; -> the files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    files, writers = {}, {}
    try:
        for chunk in chunks:
            for t, part in chunk.groupby(chunk["product_type"].astype(str), sort=False):
                rows = pa.Table.from_pandas(part, preserve_index=False)
                if t not in writers:
                    files[t] = folder / f"{types[t]}.parquet"
                    writers[t] = pq.ParquetWriter(files[t], rows.schema)
                writers[t].write_table(rows.cast(writers[t].schema))
    finally:
        for writer in writers.values():
            writer.close()
    return files


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


def build_edge(table: Embeddings | pd.DataFrame, params: IndexParams, path: Path, log=print) -> dict:
    """Build every type's shard in a sibling temp dir, then swap it in (EdgeShard.create refuses a
    dir that already holds segments, and a half-built index must never replace a good one)."""
    table, path = as_table(table), Path(path)
    type_dirs = slugs(list(table.counts))
    remove_stale(path, log)
    tmp = _sibling(path, "build")
    try:
        _build_shards(table, type_dirs, tmp, params, all_types=params.all_types)
        for t, slug in type_dirs.items():
            log(f"index: {t}: {table.counts[t]} points -> {slug}/")
        if params.all_types:
            log(f"index: all types: {table.n} points -> {ALL_TYPES}/")
        manifest = _manifest(table, type_dirs, params)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _swap(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def update_edge(table: Embeddings | pd.DataFrame, upsert: list[str], deletes: pd.DataFrame, params: IndexParams,
                path: Path, log=print) -> dict:
    """Apply a catalog change of the same model: copy the index beside itself, then in each type's
    copied shard delete and upsert only the changed points (a type that did not change is copied as
    it is, a new type is built), and swap the copy in like a rebuild. The serving index is never
    written to; the copy is what changes. Only the changed rows are read into memory."""
    table, path = as_table(table), Path(path)
    old, type_dirs = read_manifest(path), slugs(list(table.counts))
    if not upsert and deletes.empty and type_dirs == old["types"]:
        log("index: no product changed; the index stays as it is")
        return old
    changed = pd.concat([*table.rows(ids=set(upsert)), pd.DataFrame(columns=["product_type"])], ignore_index=True)
    remove_stale(path, log)
    tmp = _sibling(path, "build")
    try:
        new = {t: slug for t, slug in type_dirs.items() if t not in old["types"]}
        _build_shards(table, new, tmp, params, lambda ts: [changed[changed["product_type"].astype(str).isin(ts)]])
        for t, slug in type_dirs.items():
            ups, dels = changed[changed["product_type"].astype(str) == t], deletes[deletes["product_type"] == t]
            if t not in new:
                shutil.copytree(path / old["types"][t], tmp / slug)
                _apply(tmp / slug, ups, dels)
            log(f"index: {t}: {len(ups)} upserted, {len(dels)} deleted -> {slug}/")
        if params.all_types and "all_types" in old:
            shutil.copytree(path / old["all_types"], tmp / ALL_TYPES)
            _apply(tmp / ALL_TYPES, changed, deletes)
            log(f"index: all types: {len(changed)} upserted, {len(deletes)} deleted -> {ALL_TYPES}/")
        elif params.all_types:
            _fill(tmp / ALL_TYPES, table.dim, params, table.rows(), table.n)
            log(f"index: all types: {table.n} points -> {ALL_TYPES}/")
        manifest = _manifest(table, type_dirs, params)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _swap(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _apply(shard_dir: Path, ups: pd.DataFrame, dels: pd.DataFrame) -> None:
    """Delete the products of `dels` and upsert the rows of `ups` in the shard in shard_dir."""
    from qdrant_edge import EdgeShard, UpdateOperation

    if not len(ups) and not len(dels):
        return
    shard = EdgeShard.load(str(shard_dir))
    try:
        if len(dels):
            shard.update(UpdateOperation.delete_points([point_id(i) for i in dels["product_id"]]))
        _upsert_points(shard, ups)
        shard.optimize()
        shard.flush()
    finally:
        shard.close()


def _manifest(table: Embeddings, type_dirs: dict[str, str], params: IndexParams) -> dict:
    manifest = {"backend": "edge", "model_version": table.model_version, "dim": table.dim,
                "types": type_dirs, "counts": table.counts}
    return {**manifest, "all_types": ALL_TYPES} if params.all_types else manifest


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
