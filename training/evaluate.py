"""evaluate: text -> image retrieval on held-out products for every variant (HITS@k, MRR).

Queries come from the catalog's queries.csv (user-style queries with their relevant products);
a catalog without one is evaluated with each test product's refined query retrieving itself.
Every variant is scored on the same test products and the same queries.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.data import pair_table, read_optional, variants
from vlclip.params import load_params, section


@dataclass(frozen=True)
class EvaluateParams:
    ks: tuple[int, ...] = (1, 5, 10)


def eval_queries(catalog_dir: Path, gallery_ids: set[str], refined: pd.DataFrame) -> pd.DataFrame:
    """-> query_id, query, product_id rows restricted to the gallery; queries left with no relevant
    product are dropped."""
    path = catalog_dir / "queries.csv"
    if path.exists():
        q = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"query_id", "query", "product_id"} - set(q.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    else:
        q = refined[["product_id", "query"]].assign(query_id=refined["product_id"])
    return q[q["product_id"].isin(gallery_ids)].reset_index(drop=True)


def rank_metrics(sim: np.ndarray, relevant: list[set[int]], ks) -> dict:
    """sim (Q, G) similarities; relevant[q] = gallery indices relevant to query q."""
    order = np.argsort(-sim, axis=1)
    first_hit = []
    for q, rel in enumerate(relevant):
        hits = np.nonzero(np.isin(order[q], list(rel)))[0]
        first_hit.append(int(hits[0]) + 1)                                       # 1-based rank
    r = np.array(first_hit)
    out = {f"hits@{k}": float(np.mean(r <= k)) for k in ks}
    out["mrr"] = float(np.mean(1.0 / r))
    out["n_queries"] = int(len(r))
    return out


def evaluate_variant(encoder, gallery: pd.DataFrame, queries: pd.DataFrame, ks) -> tuple[dict, dict, dict]:
    """gallery: product_id, product_type, image_path.
    -> (overall metrics, per-product-type metrics, {query text: top-5 gallery rows})."""
    from PIL import Image

    images = []
    for p in gallery["image_path"]:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    g = encoder.encode_images(images)                                            # (G, D)
    index = {pid: i for i, pid in enumerate(gallery["product_id"])}
    grouped = queries.groupby("query_id", sort=True)
    texts = [grp["query"].iloc[0] for _, grp in grouped]
    relevant = [{index[p] for p in grp["product_id"]} for _, grp in grouped]
    sim = encoder.encode_text(texts) @ g.T                                       # (Q, G)
    overall = rank_metrics(sim, relevant, ks)
    types = gallery["product_type"].to_numpy()
    by_type = {}
    for t in sorted(set(types)):
        qs = [i for i, rel in enumerate(relevant) if any(types[j] == t for j in rel)]
        if qs:
            by_type[t] = rank_metrics(sim[qs], [relevant[i] for i in qs], ks)
    top = {text: [(gallery["image_path"].iloc[j], j in rel) for j in np.argsort(-row)[:5]]
           for text, row, rel in zip(texts, sim, relevant)}
    return overall, by_type, top


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--catalog", required=True, help="catalog directory (for queries.csv)")
    ap.add_argument("--products", required=True)
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--queries", required=True, help="refined queries.parquet")
    ap.add_argument("--models", required=True, help="directory holding one checkpoint per variant")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--by-type", required=True)
    ap.add_argument("--plots", required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    p = section(EvaluateParams, params, "evaluate")
    from training.plots import plot_examples, plot_hits
    from vlclip.encoder import load_encoder

    products, boxes, refined = (pd.read_parquet(args.products), read_optional(args.boxes),
                                read_optional(args.queries))
    metrics, by_type, tops = {}, {}, {}
    for name, variant in variants(params).items():
        pairs = pair_table(products, variant, boxes, refined)
        gallery = pairs[pairs["split"] == "test"]
        queries = eval_queries(Path(args.catalog), set(gallery["product_id"]), refined)
        encoder = load_encoder(Path(args.models) / name)
        metrics[name], by_type[name], tops[name] = evaluate_variant(encoder, gallery, queries, p.ks)
        m = metrics[name]
        print(f"evaluate[{name}]: " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in m.items()), flush=True)
    for path in (args.metrics, args.by_type):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2))
    Path(args.by_type).write_text(json.dumps(by_type, indent=2))
    plots = Path(args.plots)
    plots.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"variant": v, "k": k, "hits": metrics[v][f"hits@{k}"]} for v in metrics for k in p.ks]
                 ).to_csv(plots / "hits_at_k.csv", index=False)
    plot_hits(metrics, list(p.ks), plots / "hits_at_k.png")
    plot_examples({v: tops[v] for v in ("vlclip", "baseline")}, plots / "retrieval_examples.png")
    print(f"evaluate: wrote {args.metrics}, {args.by_type}, {plots}/hits_at_k.png, "
          f"{plots}/retrieval_examples.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
