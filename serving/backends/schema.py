"""The index schema both backends share: params, point ids, type names, and `Searcher` (nearest
products within one product type, or across all types).

Queries without a type go to one more index over every product where the index has one
(`index.all_types`, its key is None): one graph search instead of one per type and a merge, whose
cost grows with the number of types (at 10 types, 3.0 ms against 0.9 ms for a batch of 12 queries).
The price is every vector held twice.

Named cosine vectors "image" and "fused"; payload product_id, product_type, title, image_path; point
id = uuid5(product_id), because Qdrant only accepts integer or UUID ids.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

VECTORS = {"image": "image_embedding", "fused": "fused_embedding"}  # index vector name -> parquet column
PAYLOAD = ["product_id", "product_type", "title", "image_path"]
MANIFEST = "manifest.json"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "vlclip.product")
ALL_TYPES = "_all"  # edge: the directory of the shard over every product (no type's slug starts with "_")


@dataclass(frozen=True)
class IndexParams:
    backend: str            # edge | qdrant
    url: str                # qdrant backend; VLCLIP_QDRANT_URL overrides
    hnsw_m: int
    hnsw_ef_construct: int
    hnsw_ef: int
    recall_k: int
    recall_sample: int = 2000  # products whose query measures recall and latency after a build
    search_threads: int = 1    # edge: each shard's search pool (0: the library's default, sized by the CPUs)
    all_types: bool = True     # one more index over every product answers queries without a type


def point_id(product_id: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, str(product_id)))


def type_slug(product_type: str) -> str:
    """An index name for any product type: the type itself when it is already lower-case ASCII letters,
    digits and underscores; else its ASCII letters and digits plus a hash of the whole type, so two
    types never share a name ("t-shirt" and "t shirt") and a type in any script gets one ("靴")."""
    t = str(product_type)
    slug = re.sub(r"[^a-z0-9]+", "_", t.lower()).strip("_")
    if slug == t:
        return slug
    digest = hashlib.sha1(t.encode("utf-8")).hexdigest()[:8]
    return f"{slug[:48]}_{digest}" if slug else f"type_{digest}"


def slugs(types: list[str]) -> dict[str, str]:
    """product_type -> index name; distinct types get distinct names (a clash would merge two indexes)."""
    out = {t: type_slug(t) for t in sorted(set(types))}
    if len(set(out.values())) != len(out):
        raise AssertionError(f"index names collide: {out}")
    return out


def matrix(df: pd.DataFrame, column: str) -> np.ndarray:
    return np.asarray(np.stack(df[column].to_numpy()), dtype=np.float32)  # (n, dim)


class Searcher:
    """Nearest products within one product type, or across all types: from the index over every
    product (`all_types`; the backends hold it under the type None), else each type's merged by score.
    Backends implement `_requests`, `_ids`, `_payloads` and `count`."""

    def __init__(self, type_names: list[str], model_version: str, dim: int, hnsw_ef: int, all_types: bool = False):
        self._types = sorted(type_names)
        self.all_types = all_types
        self.model_version = model_version
        self.dim = dim
        self.hnsw_ef = hnsw_ef

    def types(self) -> list[str]:
        return list(self._types)

    def search(self, vector: np.ndarray, product_type: str | None = None, k: int = 10,
               using: str = "image", exact: bool = False) -> list[dict]:
        return self.search_many(np.asarray(vector, dtype=np.float32).reshape(1, -1), [product_type], [k],
                                using, exact)[0]

    def search_many(self, vectors: np.ndarray, product_types: list[str | None], ks: list[int],
                    using: str = "image", exact: bool = False) -> list[list[dict]]:
        """Nearest products for many queries at once (concurrent requests): one batched query per shard
        that any of them targets (a query without a type: the all-types shard, else every type's),
        returning ids and scores only; each query's candidates merged by score; payloads read for the
        final top k alone. -> one hit list per query, in order."""
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(product_types), -1)
        if vecs.shape[1] != self.dim:
            raise ValueError(f"query vector has {vecs.shape[1]} dims; the index holds {self.dim}")
        if using not in VECTORS:
            raise ValueError(f"unknown vector {using!r}; known: {sorted(VECTORS)}")
        unknown = sorted({t for t in product_types if t is not None and t not in self._types})
        if unknown:
            raise ValueError(f"unknown product_type {unknown[0]!r}; known types: {self._types}")
        requests = self._requests(vecs, [int(k) for k in ks], using, exact)  # once, whatever shards they ask
        found: list[list[tuple[float, str | None, object]]] = [[] for _ in product_types]  # (score, shard, ref)
        fan_out = not self.all_types
        for t in self._types if fan_out else [*self._types, None]:
            asking = [i for i, want in enumerate(product_types) if want == t or (want is None and fan_out)]
            if asking:
                for i, pairs in zip(asking, self._ids(t, [requests[i] for i in asking])):
                    found[i] += [(score, t, ref) for ref, score in pairs]
        top = [[(score, t, self._point_id(ref)) for score, t, ref in sorted(f, key=lambda x: -x[0])[:int(k)]]
               for f, k in zip(found, ks)]
        wanted: dict[str, set] = {}
        for _, t, pid in (x for hits in top for x in hits):
            wanted.setdefault(t, set()).add(pid)
        payloads = {(t, pid): p for t, pids in wanted.items() for pid, p in self._payloads(t, list(pids)).items()}
        return [[as_hit(payloads[(t, pid)], score) for score, t, pid in hits] for hits in top]

    def _requests(self, vectors: np.ndarray, ks: list[int], using: str, exact: bool) -> list:
        """One backend query per vector (nearest k by `using`, ids and scores only), built once per
        batch: an untyped query asks every type's shard with the same request."""
        raise NotImplementedError

    def _ids(self, product_type: str | None, requests: list) -> list[list[tuple[object, float]]]:
        """-> per request, its nearest (point reference, score) pairs in this type's shard (None: the
        all-types shard), no payload;
        `_point_id` turns a reference into its point id."""
        raise NotImplementedError

    def _point_id(self, ref) -> object:
        """The point id a `_ids` reference stands for (a backend may defer making it: only the final
        top k of a search need theirs)."""
        return ref

    def _payloads(self, product_type: str | None, point_ids: list) -> dict:
        """point id -> payload, for points of this type's shard."""
        raise NotImplementedError

    def count(self, product_type: str | None) -> int:
        """Points the index holds for this type, None: in the all-types shard (the index stage checks
        them against its receipt)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def as_hit(payload: dict, score: float) -> dict:
    return {"product_id": payload["product_id"], "score": float(score), "product_type": payload["product_type"],
            "title": payload["title"], "image_path": payload["image_path"]}
