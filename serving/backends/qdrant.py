"""Scale-out backend of the index stage: the same per-type schema on a Qdrant server or cluster.

Layout: one collection per product type, reached through the alias `vlclip_<type_slug>`.
Why collections and not one collection with custom shard keys per type: it mirrors the embedded
layout (one Edge shard per type), so each type gets its own HNSW graph sized to it and a query
can never cross types; each collection can be sharded/replicated on its own; and an alias per
type lets a rebuild swap every type in ONE `update_collection_aliases` call, so readers see the
old index or the new one, never a mix. (With thousands of types, per-collection overhead would
argue for one collection with user-defined sharding keyed on product_type instead.)

With `index.all_types` one more collection, alias `vlclip_all-types` (no type's slug holds a '-'),
holds every product and answers queries without a type.

Each build creates fresh collections `vlclip_<type_slug>__<version>_<build id>` carrying
{product_type, model_version} in the collection metadata, swaps the aliases, then drops every
collection of ours that neither the new aliases nor the previous ones point at: a running service
pins the collections it opened (its encoder belongs to that version) and keeps answering from the
previous generation until it reloads. The server must support collection metadata (Qdrant >= 1.16).
"""
from __future__ import annotations

import os
import time
import uuid

import pandas as pd

from serving.backends.schema import (
    PAYLOAD,
    VECTORS,
    IndexParams,
    Searcher,
    matrix,
    point_id,
    slugs,
    type_slug,
)
from serving.table import Embeddings, as_table

ALIAS_PREFIX = "vlclip_"
ALL_ALIAS = f"{ALIAS_PREFIX}all-types"
_BATCH = 256


def make_client(params: IndexParams):
    """A client for VLCLIP_QDRANT_URL (wins) or index.url; ':memory:' gives qdrant-client's local mode."""
    url = os.environ.get("VLCLIP_QDRANT_URL") or params.url
    if not url:
        raise ValueError("index.backend is 'qdrant' but neither index.url nor VLCLIP_QDRANT_URL is set")
    from qdrant_client import QdrantClient

    return QdrantClient(location=url)


def target(params: IndexParams, path=None, client=None):
    """The qdrant index lives on a server: the given client, else one for the configured URL."""
    return client if client is not None else make_client(params)


def current_aliases(client) -> dict[str, str]:
    """Our aliases -> the collections they point at (our slugs never contain '__', build names do)."""
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases
            if a.alias_name.startswith(ALIAS_PREFIX) and "__" not in a.alias_name}


def _create(client, name: str, dim: int, params: IndexParams, metadata: dict) -> None:
    from qdrant_client import models

    client.create_collection(
        name, metadata=metadata,
        vectors_config={v: models.VectorParams(size=dim, distance=models.Distance.COSINE) for v in VECTORS},
        # thresholds are in KB, as in Edge: keep them low so every type really gets an HNSW graph
        hnsw_config=models.HnswConfigDiff(m=params.hnsw_m, ef_construct=params.hnsw_ef_construct,
                                          full_scan_threshold=1),
        optimizers_config=models.OptimizersConfigDiff(indexing_threshold=1))


def _upsert(client, name: str, rows: pd.DataFrame) -> None:
    from qdrant_client import models

    if rows.empty:
        return
    vecs = {v: matrix(rows, col) for v, col in VECTORS.items()}
    payloads = rows[PAYLOAD].astype(str).to_dict("records")
    for start in range(0, len(rows), _BATCH):
        stop = min(start + _BATCH, len(rows))
        client.upsert(name, wait=True, points=[
            models.PointStruct(id=point_id(payloads[i]["product_id"]), payload=payloads[i],
                               vector={v: m[i].tolist() for v, m in vecs.items()}) for i in range(start, stop)])


def _wait_indexed(client, name: str, timeout_s: float = 600.0) -> None:
    """A server optimizes in the background; swap aliases only once the HNSW graphs exist."""
    from qdrant_client import models

    deadline = time.monotonic() + timeout_s
    while client.get_collection(name).status != models.CollectionStatus.GREEN:
        if time.monotonic() > deadline:
            raise TimeoutError(f"collection {name} still not indexed after {timeout_s:.0f}s")
        time.sleep(0.5)


def build_qdrant(table: Embeddings | pd.DataFrame, params: IndexParams, client, log=print) -> dict:
    """A fresh collection per type, filled in one pass over the table (a row group at a time), indexed,
    then swapped in under the aliases in one call."""
    from qdrant_client import models

    table = as_table(table)
    version, dim = table.model_version, table.dim
    build_id = f"{type_slug(version)}_{uuid.uuid4().hex[:8]}"
    created: dict[str | None, str] = {}  # product type (None: all types) -> collection
    try:
        for t, slug in slugs(list(table.counts)).items():
            created[t] = f"{ALIAS_PREFIX}{slug}__{build_id}"
            _create(client, created[t], dim, params, {"product_type": t, "model_version": version})
        if params.all_types:
            created[None] = f"{ALL_ALIAS}__{build_id}"
            _create(client, created[None], dim, params, {"all_types": True, "model_version": version})
        held: dict[str | None, list[pd.DataFrame]] = {}  # rows per collection until a full request's worth
        for chunk in table.rows():
            parts = list(chunk.groupby(chunk["product_type"].astype(str), sort=False))
            for t, rows in parts + ([(None, chunk)] if params.all_types else []):
                held.setdefault(t, []).append(rows)
                if sum(map(len, held[t])) >= _BATCH:
                    _upsert(client, created[t], pd.concat(held.pop(t)))
        for t, parts in held.items():
            _upsert(client, created[t], pd.concat(parts))
        for t, name in created.items():
            _wait_indexed(client, name)
            log(f"index: {t or 'all types'}: {table.counts.get(t, table.n)} points -> collection {name}")
    except BaseException:
        for name in created.values():  # never leave a half-built version behind
            client.delete_collection(name)
        raise
    counts = table.counts
    old = current_aliases(client)
    ops = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a)) for a in old]
    ops += [models.CreateAliasOperation(create_alias=models.CreateAlias(
        collection_name=name, alias_name=name.split("__")[0])) for name in created.values()]
    client.update_collection_aliases(change_aliases_operations=ops)  # one call: an atomic swap
    live = set(created.values()) | set(old.values())  # the previous generation serves until reloads
    for c in client.get_collections().collections:
        if c.name.startswith(ALIAS_PREFIX) and "__" in c.name and c.name not in live:
            client.delete_collection(c.name)
    return _held(version, dim, counts, created)


def _held(version: str, dim: int, counts: dict, created: dict) -> dict:
    out = {"backend": "qdrant", "model_version": version, "dim": dim, "counts": counts,
           "types": {t: n.split("__")[0] for t, n in created.items() if t is not None},
           "collections": {t: n for t, n in created.items() if t is not None}}
    return {**out, "all_types": created[None]} if None in created else out


def update_qdrant(table: Embeddings | pd.DataFrame, upsert: list[str], deletes: pd.DataFrame, params: IndexParams,
                  client, log=print) -> dict:
    """Apply a catalog change of the same model in place: upsert and delete points in the live
    collections (a server applies each call atomically); a new type gets a collection and alias, a
    type left with no product loses its alias."""
    from qdrant_client import models

    table = as_table(table)
    version, dim, counts = table.model_version, table.dim, table.counts
    live = current_aliases(client)
    changed = pd.concat([*table.rows(ids=set(upsert)), pd.DataFrame(columns=["product_type"])], ignore_index=True)
    created = {}
    aliases = {t: f"{ALIAS_PREFIX}{slug}" for t, slug in slugs(list(counts)).items()}
    for t, alias in {**aliases, **({None: ALL_ALIAS} if params.all_types else {})}.items():
        name, fresh = live.get(alias), alias not in live
        if fresh:  # a type new to the index (or the all-types collection of an index without one)
            name = f"{alias}__{type_slug(version)}_{uuid.uuid4().hex[:8]}"
            meta = {"product_type": t} if t is not None else {"all_types": True}
            _create(client, name, dim, params, {**meta, "model_version": version})
            client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=name, alias_name=alias))])
        gone = deletes["product_id"][(deletes["product_type"] == t) | (t is None)].tolist()
        if gone:
            client.delete(name, points_selector=models.PointIdsList(points=[point_id(i) for i in gone]), wait=True)
        parts = ([changed[changed["product_type"].astype(str) == t]] if t is not None
                 else table.rows() if fresh else [changed])  # all types: every change, or every product anew
        upserted = 0
        for rows in parts:
            _upsert(client, name, rows)
            upserted += len(rows)
        _wait_indexed(client, name)
        created[t] = name
        log(f"index: {t or 'all types'}: {upserted} upserted, {len(gone)} deleted -> collection {name}")
    dropped = [a for a in live if a not in {n.split("__")[0] for n in created.values()}]
    if dropped:
        client.update_collection_aliases(change_aliases_operations=[
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a)) for a in dropped])
    return _held(version, dim, counts, created)


class QdrantSearcher(Searcher):
    """Searches the collections the aliases pointed at when it opened: a rebuild's swap reaches a
    running service when it reloads (with the encoder of the same version), never half-way."""

    def __init__(self, client, hnsw_ef: int):
        self.client = client
        aliases = current_aliases(client)
        if not aliases:
            raise RuntimeError(f"no {ALIAS_PREFIX}* aliases on the Qdrant server; run the index stage")
        self._collections: dict[str | None, str] = {}  # product type (None: all types) -> pinned collection
        versions, dims = set(), set()
        for alias, collection in aliases.items():
            config = client.get_collection(collection).config
            meta = config.metadata or {}
            if "product_type" not in meta and not meta.get("all_types"):
                raise RuntimeError(f"collection behind alias {alias} has no product_type metadata")
            self._collections[meta.get("product_type")] = collection
            versions.add(str(meta.get("model_version")))
            dims.add(config.params.vectors["image"].size)
        if len(versions) != 1 or len(dims) != 1:
            raise RuntimeError(f"aliased collections disagree: model versions {versions}, dims {dims}")
        super().__init__([t for t in self._collections if t is not None], versions.pop(), dims.pop(), hnsw_ef,
                         None in self._collections)

    def _requests(self, vectors, ks, using, exact):
        from qdrant_client import models

        params = models.SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)
        return [models.QueryRequest(query=v, using=using, limit=k, with_payload=False, params=params)
                for v, k in zip(vectors.tolist(), ks)]

    def _ids(self, product_type, requests):
        res = self.client.query_batch_points(self._collections[product_type], requests=requests)
        return [[(p.id, p.score) for p in r.points] for r in res]

    def _payloads(self, product_type, point_ids):
        records = self.client.retrieve(self._collections[product_type], ids=point_ids, with_payload=True)
        return {r.id: r.payload for r in records}

    def count(self, product_type: str | None) -> int:
        return int(self.client.count(self._collections[product_type], exact=True).count)


def aliased_version(client) -> str:
    """The model version of the collections the aliases point at now."""
    return QdrantSearcher(client, 0).model_version


def open_qdrant(params: IndexParams, client, types: list[str] | None = None) -> QdrantSearcher:
    """Every type's collection is on the server, none in process: `types` changes nothing."""
    return QdrantSearcher(client, params.hnsw_ef)
