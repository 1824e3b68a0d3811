"""evaluate: text -> image retrieval on held-out products for every variant (HITS@k, MRR), with paired
bootstrap intervals.

The protocol cannot flatter a variant: every variant ranks the same gallery with the same queries
(asserted), one gallery and query set per held-out split. Validation figures are for decisions (the
registry's promotion gate reads them); test figures are reported. Queries come from the catalog's
queries.csv (user-style queries with their relevant products); a catalog without one is evaluated
with each held-out product's own title (HTML stripped) retrieving it, never with refined text, which
would favour the refined variants by construction.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.bootstrap import paired_bootstrap
from training.data import pair_table, raw_text, read_optional, variants
from vlclip.params import load_params, section

SPLITS = ("val", "test")  # decisions read val; the README reports test
SIMILAR_K = 5             # neighbours of /products/{id}/similar scored for image -> image precision
REFERENCE = "vlclip"


@dataclass(frozen=True)
class EvaluateParams:
    ks: tuple[int, ...] = (1, 5, 10)
    bootstrap_resamples: int = 1000
    seed: int = 0


def eval_queries(catalog_dir: Path, gallery: pd.DataFrame) -> pd.DataFrame:
    """-> query_id, query, product_id rows restricted to the gallery (product_id, title); queries left
    with no relevant product are dropped. Without queries.csv: each product's title retrieves it."""
    path = catalog_dir / "queries.csv"
    if path.exists():
        q = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = {"query_id", "query", "product_id"} - set(q.columns)
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    else:
        q = pd.DataFrame({"query_id": gallery["product_id"], "product_id": gallery["product_id"],
                          "query": [raw_text(t, "").rstrip(".") for t in gallery["title"]]})
    return q[q["product_id"].isin(set(gallery["product_id"]))].reset_index(drop=True)


def shared_gallery(tables: dict[str, pd.DataFrame], products: pd.DataFrame, split: str) -> pd.DataFrame:
    """The split's products that every variant has an image and a text for (product_id, product_type,
    title), in catalog order: one gallery for all variants."""
    ids = set.intersection(*(set(t.loc[t["split"] == split, "product_id"]) for t in tables.values()))
    part = products[products["product_id"].isin(ids)]
    return part[["product_id", "product_type", "title"]].reset_index(drop=True)


def first_hit_ranks(sim: np.ndarray, relevant: list[set[int]]) -> np.ndarray:
    """sim (Q, G) similarities; relevant[q] = gallery indices relevant to query q -> (Q,) 1-based rank of
    the first relevant product."""
    order = np.argsort(-sim, axis=1, kind="stable")
    return np.array([int(np.nonzero(np.isin(order[q], list(rel)))[0][0]) + 1 for q, rel in enumerate(relevant)])


def summarise(ranks: np.ndarray, ks) -> dict:
    out = {f"hits@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["mrr"] = float(np.mean(1.0 / ranks))
    out["n_queries"] = int(len(ranks))
    return out


def rank_metrics(sim: np.ndarray, relevant: list[set[int]], ks) -> dict:
    return summarise(first_hit_ranks(sim, relevant), ks)


def partners(queries: pd.DataFrame, gallery_ids: list[str]) -> list[set[int]]:
    """Per gallery product, the other gallery products that answer one of the same queries."""
    index = {pid: i for i, pid in enumerate(gallery_ids)}
    out: list[set[int]] = [set() for _ in gallery_ids]
    for _, grp in queries.groupby("query_id"):
        members = {index[p] for p in grp["product_id"] if p in index}
        for m in members:
            out[m] |= members - {m}
    return out


def similar_precision(fused: np.ndarray, types: np.ndarray, related: list[set[int]], k: int) -> dict:
    """Image -> image as `/products/{id}/similar` answers it: each product with a related product in the
    gallery queries its own type with its fused vector (itself excluded); precision@k is the share of
    the k neighbours related to it. fused (G, D) unit rows."""
    sim = fused @ fused.T                                                        # (G, G)
    precisions = []
    for i, rel in enumerate(related):
        if not rel:
            continue
        mask = (types == types[i])
        mask[i] = False
        neighbours = np.nonzero(mask)[0][np.argsort(-sim[i, mask], kind="stable")[:k]]
        precisions.append(len(rel & set(neighbours.tolist())) / max(len(neighbours), 1))
    return {f"precision@{k}": float(np.mean(precisions)) if precisions else float("nan"),
            "n_products": len(precisions)}


def evaluate_variant(encoder, gallery: pd.DataFrame, queries: pd.DataFrame, ks) -> dict:
    """gallery: product_id, product_type, image_path and text (this variant's image and text of each
    product). -> {"ranks": (Q,) first-hit ranks in query_id order, "by_type": per-type metrics,
    "similar": image -> image precision with fused vectors, "top": {query text: top-5 (image_path,
    relevant)}}."""
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
    ranks = first_hit_ranks(sim, relevant)
    types = gallery["product_type"].to_numpy()
    by_type = {}
    for t in sorted(set(types)):
        qs = [i for i, rel in enumerate(relevant) if any(types[j] == t for j in rel)]
        if qs:
            by_type[t] = summarise(ranks[qs], ks)
    top = {text: [(gallery["image_path"].iloc[j], j in rel) for j in np.argsort(-row)[:5]]
           for text, row, rel in zip(texts, sim, relevant)}
    fused = g + encoder.encode_text(gallery["text"].tolist())                    # as serving.embed fuses
    fused /= np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)
    similar = similar_precision(fused, types, partners(queries, gallery["product_id"].tolist()), SIMILAR_K)
    return {"ranks": ranks, "query_ids": [str(q) for q, _ in grouped], "by_type": by_type, "similar": similar,
            "top": top}


def evaluate_split(encoders: dict, tables: dict[str, pd.DataFrame], products: pd.DataFrame, split: str,
                   catalog: Path, p: EvaluateParams) -> dict[str, dict]:
    """Every variant on the split's one gallery and query set. -> variant -> evaluate_variant's dict."""
    gallery = shared_gallery(tables, products, split)
    queries = eval_queries(catalog, gallery)
    if queries.empty:
        raise ValueError(f"no {split} query has a relevant product in the {split} gallery ({len(gallery)} products)")
    out = {}
    for name, table in tables.items():
        images = gallery.merge(table[["product_id", "image_path", "text"]], on="product_id", how="left")
        if images["product_id"].tolist() != gallery["product_id"].tolist() or images["image_path"].isna().any():
            raise ValueError(f"variant {name} lacks an image for part of the shared {split} gallery")
        out[name] = evaluate_variant(encoders[name], images, queries, p.ks)
    return out


def report(results: dict[str, dict[str, dict]], p: EvaluateParams) -> dict:
    """-> metrics/retrieval.json: per variant the test figures (hits@k, mrr, n_queries), "ci95" and
    "vs_vlclip" (paired bootstrap over the test queries), "similar" (image -> image precision@5 of the
    fused vectors, products related by sharing a query) and "val" (the figures decisions read)."""
    test = {v: r["ranks"] for v, r in results["test"].items()}
    boot = paired_bootstrap(test, p.ks, REFERENCE, p.bootstrap_resamples, seed=p.seed)
    return {v: {**summarise(test[v], p.ks), **boot[v], "similar": results["test"][v]["similar"],
                "val": summarise(results["val"][v]["ranks"], p.ks)} for v in test}


def headline(metrics: dict) -> dict[str, dict]:
    """-> variant -> the figures a terminal row holds: test hits@5 with its 95% interval, MRR, and the
    validation hits@5 decisions read (metrics/summary/<variant>.json, the table `dvc metrics show` prints)."""
    return {v: {"hits@5": round(m["hits@5"], 4), "hits@5_lo": round(m["ci95"]["hits@5"][0], 4),
                "hits@5_hi": round(m["ci95"]["hits@5"][1], 4), "mrr": round(m["mrr"], 4),
                "val_hits@5": round(m["val"]["hits@5"], 4)} for v, m in metrics.items()}


def per_type(by_type: dict[str, dict]) -> dict[str, dict]:
    """variant -> type -> figures  =>  type -> every variant's test hits@5 and the type's query count
    (metrics/by_type/<type>.json: `dvc metrics show metrics/by_type` prints a row per type)."""
    types = sorted({t for figures in by_type.values() for t in figures})
    return {t: {**{v: round(by_type[v][t]["hits@5"], 4) for v in by_type if t in by_type[v]},
                "queries": max(by_type[v][t]["n_queries"] for v in by_type if t in by_type[v])} for t in types}


def file_name(name: str) -> str:
    """A file name for a variant or product type: its lower-case ASCII letters and digits, with a hash of
    the name when anything was dropped, so two names never share a file."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return slug if slug == name else f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def write_rows(folder: str | Path, rows: dict[str, dict]) -> None:
    """One JSON file per row (DVC shows a metrics directory as a table with a row per file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        stale.unlink()
    for name, figures in rows.items():
        (folder / f"{file_name(name)}.json").write_text(json.dumps(figures, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--catalog", required=True, help="catalog directory (for queries.csv)")
    ap.add_argument("--products", required=True)
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--queries", required=True, help="refined queries.parquet")
    ap.add_argument("--models", required=True, help="directory holding one checkpoint per variant")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--by-type", required=True)
    ap.add_argument("--summary", required=True, help="directory: a row of headline figures per variant")
    ap.add_argument("--type-table", required=True, help="directory: a row of hits@5 per product type")
    ap.add_argument("--ranks", required=True, help="per-query first-hit ranks (variant, split, query_id, rank)")
    ap.add_argument("--plots", required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    p = section(EvaluateParams, params, "evaluate")
    from training.plots import plot_examples, plot_hits
    from vlclip.encoder import load_encoder

    products, boxes, refined = (pd.read_parquet(args.products), read_optional(args.boxes),
                                read_optional(args.queries))
    chosen = variants(params)
    if REFERENCE not in chosen:
        raise KeyError(f"params.yaml variants must include {REFERENCE!r}, the reference of the comparisons")
    tables = {name: pair_table(products, v, boxes, refined) for name, v in chosen.items()}
    encoders = {name: load_encoder(Path(args.models) / name) for name in chosen}
    results = {split: evaluate_split(encoders, tables, products, split, Path(args.catalog), p) for split in SPLITS}
    metrics = report(results, p)
    for name, m in metrics.items():
        lo, hi = m["ci95"]["hits@5"]
        print(f"evaluate[{name}]: test " + "  ".join(f"{k} {m[k]:.3f}" for k in (*(f"hits@{k}" for k in p.ks), "mrr"))
              + f"  (hits@5 95% CI {lo:.3f}-{hi:.3f}; {m['n_queries']} queries)  val hits@5 {m['val']['hits@5']:.3f}",
              flush=True)
    by_type = {v: r["by_type"] for v, r in results["test"].items()}
    for path in (args.metrics, args.by_type):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2))
    Path(args.by_type).write_text(json.dumps(by_type, indent=2))
    write_rows(args.summary, headline(metrics))
    write_rows(args.type_table, per_type(by_type))
    Path(args.ranks).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"variant": v, "split": split, "query_id": q, "rank": int(r)}
                  for split, rs in results.items() for v, res in rs.items()
                  for q, r in zip(res["query_ids"], res["ranks"])]).to_parquet(args.ranks, index=False)
    plots = Path(args.plots)
    plots.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"variant": v, "k": k, "hits": m[f"hits@{k}"], "lo": m["ci95"][f"hits@{k}"][0],
                   "hi": m["ci95"][f"hits@{k}"][1]} for v, m in metrics.items() for k in p.ks]
                 ).to_csv(plots / "hits_at_k.csv", index=False)
    plot_hits(metrics, list(p.ks), plots / "hits_at_k.png")
    plot_examples({v: results["test"][v]["top"] for v in ("vlclip", "baseline") if v in results["test"]},
                  plots / "retrieval_examples.png")
    print(f"evaluate: wrote {args.metrics}, {args.by_type}, {args.summary}/, {args.type_table}/, "
          f"{plots}/hits_at_k.png, "
          f"{plots}/retrieval_examples.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
