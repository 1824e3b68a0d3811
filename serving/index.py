"""index stage: product embeddings -> one HNSW index per product type, plus a receipt.

VL-CLIP serves from HNSW indexes grouped by product type so a query only ever searches its own
type. Two backends share one schema (named cosine vectors "image" and "fused"; payload
product_id, product_type, title, image_path; point id = uuid5(product_id), because Qdrant only
accepts integer or UUID ids):

- `edge` (embedded default): one Qdrant Edge shard per type in `<path>/<type_slug>/`, in process,
  with `<path>/manifest.json`; see serving/edge_index.py.
- `qdrant` (scale-out): a Qdrant server or cluster through qdrant-client; see serving/qdrant_index.py.

Why a shard (collection) per type rather than one shard with a tenant-partitioned product_type
payload index: a per-type graph is the paper's layout made physical, so a typed query can never
touch another type's vectors and needs no filter; each type can be rebuilt, resized or tuned on its
own (a new type adds a shard and rebuilds nothing else); and recall and latency are measured per
type in the receipt. The cost, a fan-out merge for untyped queries, is small with ~10-100 types.

Run: python -m serving.index --params params.yaml --embeddings data/embeddings/products.parquet
     --receipt receipts/index.json
"""
from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

VECTORS = {"image": "image_embedding", "fused": "fused_embedding"}  # index vector name -> parquet column
PAYLOAD = ["product_id", "product_type", "title", "image_path"]
REQUIRED = PAYLOAD + ["image_embedding", "text_embedding", "fused_embedding", "model_version"]
MANIFEST = "manifest.json"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "vlclip.product")


@dataclass(frozen=True)
class IndexParams:
    backend: str            # edge | qdrant
    path: str               # edge shards live here
    url: str                # qdrant backend; VLCLIP_QDRANT_URL overrides
    hnsw_m: int
    hnsw_ef_construct: int
    hnsw_ef: int
    recall_k: int


def point_id(product_id: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, str(product_id)))


def type_slug(product_type: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", str(product_type).lower()).strip("_")
    if not slug:
        raise ValueError(f"product_type {product_type!r} has no letters or digits to name an index with")
    return slug


def slugs(types: list[str]) -> dict[str, str]:
    """product_type -> slug; two types that collapse to one slug would share an index, so fail."""
    out: dict[str, str] = {}
    for t in sorted(types):
        s = type_slug(t)
        clash = [o for o, os_ in out.items() if os_ == s]
        if clash:
            raise ValueError(f"product types {clash[0]!r} and {t!r} both map to index name {s!r}")
        out[t] = s
    return out


def load_embeddings(df: pd.DataFrame) -> pd.DataFrame:
    """Check the embed stage's table (one model_version, unique ids, equal dims, no nulls)."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"embeddings table lacks columns {missing}")
    dup = df["product_id"][df["product_id"].duplicated()].tolist()
    if dup:
        raise ValueError(f"embeddings table repeats product_id {dup[:5]}")
    versions = sorted(df["model_version"].astype(str).unique())
    if len(versions) != 1:
        raise ValueError(f"embeddings table mixes model versions {versions}; the index holds one")
    for col in REQUIRED:
        bad = df["product_id"][df[col].isna()].tolist()
        if bad:
            raise ValueError(f"column {col} is null for product_id {bad[:5]}")
    dims = {c: {len(v) for v in df[c]} for c in ("image_embedding", "text_embedding", "fused_embedding")}
    if any(len(d) != 1 for d in dims.values()) or len(set().union(*dims.values())) != 1:
        raise ValueError(f"embedding lengths differ: {dims}")
    return df.reset_index(drop=True)


def matrix(df: pd.DataFrame, column: str) -> np.ndarray:
    return np.asarray(np.stack(df[column].to_numpy()), dtype=np.float32)  # (n, dim)


class Searcher:
    """Nearest products within one product type, or across all types merged by score.
    Backends implement `_query(product_type, vector, k, using, exact) -> list[dict]`."""

    def __init__(self, type_names: list[str], model_version: str, dim: int, hnsw_ef: int):
        self._types = sorted(type_names)
        self.model_version = model_version
        self.dim = dim
        self.hnsw_ef = hnsw_ef

    def types(self) -> list[str]:
        return list(self._types)

    def search(self, vector: np.ndarray, product_type: str | None = None, k: int = 10,
               using: str = "image", exact: bool = False) -> list[dict]:
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape[0] != self.dim:
            raise ValueError(f"query vector has {vec.shape[0]} dims; the index holds {self.dim}")
        if using not in VECTORS:
            raise ValueError(f"unknown vector {using!r}; known: {sorted(VECTORS)}")
        if product_type is not None and product_type not in self._types:
            raise ValueError(f"unknown product_type {product_type!r}; known types: {self._types}")
        targets = self._types if product_type is None else [product_type]
        hits = [h for t in targets for h in self._query(t, vec, int(k), using, exact)]
        hits.sort(key=lambda h: -h["score"])
        return hits[:k]

    def _query(self, product_type: str, vector: np.ndarray, k: int, using: str, exact: bool) -> list[dict]:
        raise NotImplementedError

    def close(self) -> None:
        pass


def as_hit(payload: dict, score: float) -> dict:
    return {"product_id": payload["product_id"], "score": float(score), "product_type": payload["product_type"],
            "title": payload["title"], "image_path": payload["image_path"]}


def open_searcher(params: IndexParams, path: str | Path | None = None, client=None) -> Searcher:
    """Open what the index stage built: edge shards under `path` (default params.path), or the
    aliased collections of a Qdrant server (`client`, else one for params.url / VLCLIP_QDRANT_URL)."""
    if params.backend == "edge":
        from serving.edge_index import EdgeSearcher

        return EdgeSearcher(Path(path or params.path), params.hnsw_ef)
    if params.backend == "qdrant":
        from serving.qdrant_index import QdrantSearcher, make_client

        return QdrantSearcher(client or make_client(params), params.hnsw_ef)
    raise ValueError(f"index.backend must be 'edge' or 'qdrant', not {params.backend!r}")


def build(df: pd.DataFrame, params: IndexParams, path: str | Path | None = None, client=None, log=print) -> dict:
    if params.backend == "edge":
        from serving.edge_index import build_edge

        return build_edge(df, params, Path(path or params.path), log)
    if params.backend == "qdrant":
        from serving.qdrant_index import build_qdrant, make_client

        return build_qdrant(df, params, client or make_client(params), log)
    raise ValueError(f"index.backend must be 'edge' or 'qdrant', not {params.backend!r}")


def measure(searcher: Searcher, df: pd.DataFrame, k: int) -> dict:
    """Recall@k of HNSW vs exact search, each product's text embedding querying the image vectors
    of its own type (the text->image retrieval the service does), plus HNSW latency."""
    queries = matrix(df, "text_embedding")
    types = df["product_type"].astype(str).to_numpy()
    per_type: dict[str, list[float]] = {}
    latency = []
    for q, t in zip(queries, types):
        t0 = time.perf_counter()
        approx = searcher.search(q, t, k)
        latency.append((time.perf_counter() - t0) * 1000)
        exact = {h["product_id"] for h in searcher.search(q, t, k, exact=True)}
        per_type.setdefault(t, []).append(len(exact & {h["product_id"] for h in approx}) / len(exact))
    recalls = [r for rs in per_type.values() for r in rs]
    return {"k": k, "recall@k": float(np.mean(recalls)),
            "recall@k_per_type": {t: float(np.mean(rs)) for t, rs in sorted(per_type.items())},
            "latency_ms": {"p50": float(np.percentile(latency, 50)), "p95": float(np.percentile(latency, 95))}}


def main(argv: list[str] | None = None) -> int:
    from vlclip.params import load_params, section

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--embeddings", required=True)
    ap.add_argument("--receipt", required=True)
    ap.add_argument("--index", default=None, help="edge index dir (default: params index.path)")
    args = ap.parse_args(argv)
    params = section(IndexParams, load_params(args.params), "index")
    df = pd.read_parquet(args.embeddings)
    print(f"index: {len(df)} products, backend {params.backend}")
    client = None
    if params.backend == "qdrant":  # one client for build and measure (':memory:' lives in it)
        from serving.qdrant_index import make_client

        client = make_client(params)
    t0 = time.perf_counter()
    built = build(df, params, args.index, client)
    build_s = time.perf_counter() - t0
    searcher = open_searcher(params, args.index, client)
    try:
        stats = measure(searcher, load_embeddings(df), params.recall_k)
    finally:
        searcher.close()
    receipt = {"backend": params.backend, "model_version": built["model_version"], "dim": built["dim"],
               "n_points": int(sum(built["counts"].values())), "counts": built["counts"],
               "hnsw_ef": params.hnsw_ef, **stats, "build_s": round(build_s, 3)}
    if "collections" in built:
        receipt["collections"] = built["collections"]
    Path(args.receipt).parent.mkdir(parents=True, exist_ok=True)
    Path(args.receipt).write_text(json.dumps(receipt, indent=2) + "\n")
    print(f"index: recall@{params.recall_k} {stats['recall@k']:.3f}, p50 {stats['latency_ms']['p50']:.2f} ms, "
          f"built in {build_s:.1f}s -> {args.receipt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
