"""Embedded backend, the search side: the Qdrant Edge shards that serving/backends/edge.py built
(one per product type, and one over every product when the manifest names it), opened and searched.
"""
from __future__ import annotations

import json
from pathlib import Path

from serving.backends.schema import MANIFEST, IndexParams, Searcher


class EdgeSearcher(Searcher):
    """The shards of the types in `load` (None: all, and the all-types shard; in a list, None names
    that shard) held open; `count` reads any type's shard."""

    def __init__(self, path: Path, hnsw_ef: int, load: list[str | None] | None = None):
        from qdrant_edge import EdgeShard

        self.path, self.manifest = Path(path), read_manifest(path)
        self._dirs = {**self.manifest["types"], **({None: self.manifest["all_types"]}
                                                    if "all_types" in self.manifest else {})}
        self._shards = {}
        for t, d in self._dirs.items():
            if load is not None and t not in load:
                continue
            try:
                self._shards[t] = EdgeShard.load(str(self.path / d))
            except Exception as exc:  # an Edge shard's WAL admits one open handle: one serving process
                self.close()
                raise RuntimeError(f"cannot open index shard {self.path / d} ({exc}); is another process "
                                   "serving it? For several workers use index.backend: qdrant") from exc
        super().__init__(list(self.manifest["types"]), self.manifest["model_version"], int(self.manifest["dim"]),
                         hnsw_ef, None in self._dirs)

    def _shard(self, product_type: str | None):
        if product_type not in self._shards:
            raise RuntimeError(f"the shard of type {product_type or 'all types'!r} was not opened")
        return self._shards[product_type]

    def _requests(self, vectors, ks, using, exact):
        from qdrant_edge import Query, QueryRequest, SearchParams

        params = SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)
        return [QueryRequest(limit=k, query=Query.Nearest(v, using=using), with_payload=False, params=params)
                for v, k in zip(vectors.tolist(), ks)]

    def _ids(self, product_type, requests):
        from qdrant_edge import QueryBatchRequest

        res = self._shard(product_type).query_batch(QueryBatchRequest(requests))
        return [[(p, p.score) for p in points] for points in res]

    def _point_id(self, ref):
        return ref.id  # the binding makes a uuid.UUID on each read: only for the hits a search keeps

    def _payloads(self, product_type, point_ids):
        return {r.id: r.payload for r in self._shard(product_type).retrieve(point_ids, True, False)}

    def count(self, product_type: str | None) -> int:
        from qdrant_edge import EdgeShard

        if product_type in self._shards:
            return int(self._shards[product_type].info().points_count)
        shard = EdgeShard.load(str(self.path / self._dirs[product_type]))  # for the count alone
        try:
            return int(shard.info().points_count)
        finally:
            shard.close()

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


def open_edge(params: IndexParams, path: Path, types: list[str | None] | None = None) -> EdgeSearcher:
    return EdgeSearcher(path, params.hnsw_ef, types)
