"""index stage: product embeddings -> one HNSW index per product type, plus a receipt.

VL-CLIP serves from HNSW indexes grouped by product type so a query only ever searches its own
type. Two backends share one schema (named cosine vectors "image" and "fused"; payload
product_id, product_type, title, image_path; point id = uuid5(product_id), because Qdrant only
accepts integer or UUID ids):

- `edge` (embedded default): one Qdrant Edge shard per type in `<index>/<type_slug>/`, in process,
  with `<index>/manifest.json`; see serving/backends/edge.py.
- `qdrant` (scale-out): a Qdrant server or cluster through qdrant-client; see serving/backends/qdrant.py.

Why a shard (collection) per type rather than one shard with a tenant-partitioned product_type
payload index: a per-type graph is the paper's layout made physical, so a typed query can never
touch another type's vectors and needs no filter; each type can be rebuilt, resized or tuned on its
own (a new type adds a shard and rebuilds nothing else); and recall and latency are measured per
type in the receipt. A query without a type would have to ask every type's shard and merge, a cost
that grows with the number of types, so `index.all_types` (default on) adds one more shard over
every product that answers those queries alone; off, they fan out and every vector is held once.

Runs on every `dvc repro` (see vlclip.receipt): when the receipt names these embeddings and params and
the index answers with the counts it records, nothing is rebuilt.

Run: python -m serving.index --params params.yaml --embeddings data/embeddings/products.parquet
     --index data/index --receipt receipts/index.json --metrics metrics/index.json
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from serving.backends import Embeddings, Searcher, as_table, backend, matrix
from serving.backends.schema import IndexParams
from serving.delta import delta, read_state, spread, write_state
from vlclip import receipt
from vlclip.params import load_params, section
from vlclip.progress import figures, write_report
from vlclip.tables import read_frames


def measure(open_types: Callable[[list[str | None]], Searcher], table: Embeddings | pd.DataFrame, k: int,
            sample: int) -> dict:
    """Recall@k of HNSW vs exact search, each product's text embedding querying the image vectors
    of its own type (the text->image retrieval the service does), plus HNSW latency; over `sample`
    products spread through the table (all of them when there are fewer). One type's shard is open
    at a time (`open_types([t])`), so measuring holds one type's index, not the catalog's. Where the
    index has an all-types shard (`open_types([None])`), a tenth of the sample queries it without a
    type: `recall@k_all_types` (its exact search reads every product, hence the tenth)."""
    table = as_table(table)
    df = table.take(spread(table.n, sample))
    per_type: dict[str, list[float]] = {}
    latency: list[float] = []
    for t, part in df.groupby(df["product_type"].astype(str), sort=True):
        per_type[t] = _recall(open_types([t]), matrix(part, "text_embedding"), t, k, latency)
    recalls = [r for rs in per_type.values() for r in rs]
    out = {"k": k, "recall@k": float(np.mean(recalls)),
           "recall@k_per_type": {t: float(np.mean(rs)) for t, rs in sorted(per_type.items())},
           "latency_ms": {"p50": float(np.percentile(latency, 50)), "p95": float(np.percentile(latency, 95))}}
    searcher = open_types([None])
    if not searcher.all_types:
        searcher.close()
        return out
    everywhere = table.take(spread(table.n, max(1, sample // 10)))
    return {**out, "recall@k_all_types": float(np.mean(_recall(searcher, matrix(everywhere, "text_embedding"),
                                                               None, k, [])))}


def _recall(searcher: Searcher, queries: np.ndarray, product_type: str | None, k: int,
            latency: list[float]) -> list[float]:
    """Each query's recall@k of HNSW against exact search in one shard (its latency appended); closes it."""
    out = []
    try:
        for q in queries:
            t0 = time.perf_counter()
            approx = searcher.search(q, product_type, k)
            latency.append((time.perf_counter() - t0) * 1000)
            exact = {h["product_id"] for h in searcher.search(q, product_type, k, exact=True)}
            out.append(len(exact & {h["product_id"] for h in approx}) / len(exact))
    finally:
        searcher.close()
    return out


def problems(chosen, params: IndexParams, target, old: dict | None) -> list[str]:
    """Why the index does not hold what the receipt says ([] = it does)."""
    if not old:
        return ["no receipt"]
    if old.get("params") != asdict(params):
        return ["index params changed"]
    searcher = None
    try:  # the counts read each type's shard in turn, none held open
        searcher = chosen.open(params, target, [])
        if (searcher.model_version, searcher.dim) != (old["model_version"], old["dim"]):
            return [f"index holds model {searcher.model_version} ({searcher.dim}-d)"]
        if set(searcher.types()) != set(old["counts"]):
            return ["product types differ"]
        held = {t: searcher.count(t) for t in old["counts"]}
        if searcher.all_types != params.all_types or (params.all_types and
                                                     searcher.count(None) != sum(old["counts"].values())):
            return ["the all-types shard is missing or does not hold every product"]
    except Exception as exc:  # gone, half-deleted, or held by a serving process (edge): rebuild and swap
        return [f"cannot open the index ({type(exc).__name__}: {exc})"]
    finally:
        if searcher is not None:
            searcher.close()
    return [f"{t}: {held[t]} points, receipt says {n}" for t, n in old["counts"].items() if held[t] != n]


def write_index(chosen, params: IndexParams, target, table: Embeddings, old: dict | None,
                state: pd.DataFrame | None) -> tuple[dict, dict, str]:
    """Update the index in place of a rebuild when it holds the same model and its last rows are
    known; -> (what the index holds, how well and fast it answers, how it was written)."""
    same = (old is not None and state is not None and table.model_version == old["model_version"]
            and table.dim == old["dim"])
    t0 = time.perf_counter()
    if same:
        upsert, deletes = delta(state, table.digests)
        built = chosen.update(table, upsert, deletes, params, target, print)
        how = f"updated: {len(upsert)} upserted, {len(deletes)} deleted"
    else:
        built, how = chosen.build(table, params, target, print), "rebuilt"
    build_s = time.perf_counter() - t0
    stats = measure(lambda types: chosen.open(params, target, types), table, params.recall_k, params.recall_sample)
    held = {"backend": params.backend, "model_version": built["model_version"], "dim": built["dim"],
            "n_points": int(sum(built["counts"].values())), "counts": built["counts"], "params": asdict(params)}
    held.update({key: built[key] for key in ("collections", "all_types") if key in built})
    return held, {"hnsw_ef": params.hnsw_ef, **stats, "build_s": round(build_s, 3)}, how


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--embeddings", required=True)
    ap.add_argument("--receipt", required=True)
    ap.add_argument("--metrics", required=True, help="recall against exact search, latency, build time")
    ap.add_argument("--index", help="edge backend: the directory the shards live in")
    ap.add_argument("--state", help="digests of the rows the index holds, for updates of the same model")
    ap.add_argument("--throughput", help="JSON: items, seconds, items/s, peak RSS of a run that wrote the index")
    args = ap.parse_args(argv)
    params = section(IndexParams, load_params(args.params), "index")
    started, fingerprint = time.perf_counter(), receipt.sha256_file(args.embeddings)
    chosen = backend(params)
    target = chosen.target(params, args.index, None)  # one target for build and measure (':memory:' lives in it)
    old = receipt.read(args.receipt)
    found = problems(chosen, params, target, old)
    if not found and old.get("embeddings_sha256") == fingerprint and Path(args.metrics).exists():
        print(f"index: {sum(old['counts'].values())} products, backend {params.backend}: the index holds them; "
              "nothing to do")
        if args.throughput and not Path(args.throughput).exists():  # DVC expects the file
            write_report(args.throughput, {**figures(0, time.perf_counter() - started), "how": "verified"})
        return 0
    table = Embeddings.scan(lambda: read_frames(args.embeddings))
    state = None if found else read_state(args.state, old.get("rows_sha256"))
    receipt.clear(args.receipt)
    held, stats, how = write_index(chosen, params, target, table, None if found else old, state)
    rows_sha256 = write_state(args.state, table.digests) if args.state else None
    receipt.write(args.metrics, stats)
    receipt.write(args.receipt, {**held, "embeddings_sha256": fingerprint, "rows_sha256": rows_sha256})
    run = figures(table.n, time.perf_counter() - started)
    if args.throughput:
        write_report(args.throughput, {**run, "how": how.split(":")[0]})
    print(f"index: {table.n} products, {how} ({found[0] if found else 'embeddings changed'}); recall@"
          f"{params.recall_k} {stats['recall@k']:.3f}, p50 {stats['latency_ms']['p50']:.2f} ms, "
          f"in {stats['build_s']:.1f}s -> {args.receipt}; {run['items_per_s']} products/s, "
          f"peak RSS {run['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
