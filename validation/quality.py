"""quality stage: how good the refined queries and the grounded boxes are, as DVC metrics logged to MLflow.

    python -m validation.quality --params params.yaml --catalog <catalog dir> --products data/catalog/products.parquet
        --queries data/refine/queries.parquet --boxes data/ground/boxes.csv --metrics metrics/quality.json

Always: hard-guard pass rate, non-visual rate, words per query and the share inside refine's word
window, fallback rate (per type too). Where the
catalog ships ground truth (`<catalog>/ground_truth/products.csv`, as the demo and the icon yardstick
do; no other stage reads it) it adds, per the columns present:
- `<attr>_text` columns (the phrase the product's text uses for a visual attribute, empty when the
  text never states it): the share of stated phrases a query keeps whole, per attribute and overall;
- x0, y0, x1, y1 (the product's box in pixels): IoU of the box grounding kept (the detector's box, or
  the full image on fallback) with it: mean, share >= 0.5, per product type; and how often the square
  crop holds at least 90% of the product.
Hallucinated words are query words that the product's own text (type, title, description, any other
column) never says, a share of all query words but connectives.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from curation.refinement.guards import non_visual_hits
from curation.refinement.product import CORE_COLUMNS
from curation.refinement.text import clean_text, tokens
from vlclip.params import load_params, section
from vlclip.tracking import MlflowParams, setup

CONNECTIVES = frozenset({"a", "an", "the", "with", "and", "in", "on", "of"})
BOX = ["x0", "y0", "x1", "y1"]
KEPT_BOX = ["bx0", "by0", "bx1", "by1"]


def _own_words(row: dict) -> set[str]:
    texts = [clean_text(v) for k, v in row.items() if k not in CORE_COLUMNS or k in ("product_type", "title",
                                                                                    "description")]
    words = set(tokens(" ".join(texts).replace("_", " ")))
    return words | {part for w in words for part in w.replace("'", "-").split("-")}


def refinement_quality(queries: pd.DataFrame, products: pd.DataFrame, truth: pd.DataFrame | None,
                       window: tuple[int, int] = (10, 20)) -> dict:
    """queries: product_id, query, guard_ok; products: the catalog rows the refiner read; window: the
    refine stage's min_words..max_words."""
    words = queries["query"].fillna("").map(tokens)
    own = {r["product_id"]: _own_words(r) for r in products.to_dict("records")}
    content = [(pid, w) for pid, ws in zip(queries["product_id"], words) for w in ws if w not in CONNECTIVES]
    ok = queries["guard_ok"].astype(str).str.lower().isin({"true", "1", "1.0"})
    out = {"n": int(len(queries)), "guard_pass_rate": _mean(ok),
           "non_visual_rate": _mean(queries["query"].fillna("").map(lambda q: bool(non_visual_hits(q)))),
           "mean_words": _mean(words.map(len)), "in_window": _mean(words.map(len).between(*window)),
           "hallucinated_words": _mean([w not in own.get(pid, set()) for pid, w in content])}
    if truth is not None and any(c.endswith("_text") for c in truth.columns):
        out |= _attributes_kept(queries[["product_id"]].assign(words=words.map(set)), truth)
    return out


def _attributes_kept(words: pd.DataFrame, truth: pd.DataFrame) -> dict:
    """words: product_id, the set of query words. Each stated `<attr>_text` phrase is kept when the
    query has all its words; -> the share overall, per attribute and (where the truth says) per
    description kind."""
    phrases = [c for c in truth.columns if c.endswith("_text")]
    kind = ["description_kind"] if "description_kind" in truth else []
    df = words.merge(truth[["product_id", *kind, *phrases]], on="product_id").melt(
        id_vars=["product_id", "words", *kind], value_vars=phrases, var_name="attribute", value_name="phrase")
    df = df[df["phrase"].fillna("").astype(str).str.strip() != ""]
    df = df.assign(kept=[set(tokens(p)) <= w for p, w in zip(df["phrase"], df["words"])])
    out = {"attributes_kept": _mean(df["kept"]),
           "attributes_kept_by_attribute": {c.removesuffix("_text"): _mean(df.loc[df["attribute"] == c, "kept"])
                                            for c in phrases}}
    if kind:
        out["attributes_kept_by_kind"] = {k: _mean(g) for k, g in df.groupby("description_kind")["kept"]}
    return out


def grounding_quality(boxes: pd.DataFrame, types: pd.DataFrame, truth: pd.DataFrame | None) -> dict:
    """boxes: product_id, fallback, crop box x0..y1 and kept box bx0..by1 (pixels)."""
    df = boxes.merge(types, on="product_id")
    out = {"n": int(len(df)), "fallback_rate": _mean(df["fallback"].astype(bool)),
           "fallback_rate_by_type": {t: _mean(g["fallback"].astype(bool)) for t, g in df.groupby("product_type")}}
    if truth is None or not set(BOX) <= set(truth.columns):
        return out
    df = df.merge(truth[["product_id", *BOX]].rename(columns={c: f"{c}_gt" for c in BOX}), on="product_id")
    df = df[df["x0_gt"].notna()]
    gt = df[[f"{c}_gt" for c in BOX]].to_numpy(float)
    iou = box_iou(df[KEPT_BOX].to_numpy(float), gt)
    crop_cover = _intersection(df[BOX].to_numpy(float), gt) / _area(gt)
    df = df.assign(iou=iou)
    out.update({"n_with_box": int(len(df)), "mean_iou": _mean(iou), "iou>=0.5": _mean(iou >= 0.5),
                "product_fully_in_crop": _mean(crop_cover >= 0.9),
                "iou>=0.5_by_type": {t: _mean(g["iou"] >= 0.5) for t, g in df.groupby("product_type")}})
    return out


def _area(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    return iw * ih


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) boxes x0, y0, x1, y1."""
    inter = _intersection(a, b)
    return inter / np.maximum(_area(a) + _area(b) - inter, 1e-9)


def _mean(values) -> float | None:
    arr = np.asarray(list(values), dtype=float)
    return round(float(arr.mean()), 4) if arr.size else None


def flat(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Nested metrics -> MLflow keys ("grounding.iou_0.5_by_type.lamp"); None dropped."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = re.sub(r"[^\w\-./]", "_", f"{prefix}{k}".replace(">=", "_ge_"))
        if isinstance(v, dict):
            out |= flat(v, key + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--params", "--catalog", "--products", "--queries", "--boxes", "--metrics"):
        ap.add_argument(name, required=name != "--params", default="params.yaml" if name == "--params" else None)
    args = ap.parse_args(argv)
    truth_path = Path(args.catalog) / "ground_truth" / "products.csv"
    truth = pd.read_csv(truth_path, dtype={"product_id": str}, keep_default_na=False) if truth_path.is_file() else None
    if truth is not None:
        truth[[c for c in BOX if c in truth]] = truth[[c for c in BOX if c in truth]].replace("", np.nan).astype(float)
    products, params = pd.read_parquet(args.products), load_params(args.params)
    window = (params["refine"]["min_words"], params["refine"]["max_words"])
    metrics = {"ground_truth": truth is not None,
               "refinement": refinement_quality(pd.read_parquet(args.queries), products, truth, window),
               "grounding": grounding_quality(pd.read_csv(args.boxes, dtype={"product_id": str}),
                                              products[["product_id", "product_type"]], truth)}
    Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
    Path(args.metrics).write_text(json.dumps(metrics, indent=2) + "\n")
    import mlflow

    setup(section(MlflowParams, params, "mlflow"))
    with mlflow.start_run(run_name="quality"):
        mlflow.set_tags({"stage": "quality", "ground_truth": str(truth is not None).lower()})
        mlflow.log_metrics(flat(metrics))
    r, g = metrics["refinement"], metrics["grounding"]
    print(f"quality: guard pass {r['guard_pass_rate']}, hallucinated {r['hallucinated_words']}, "
          f"attributes kept {r.get('attributes_kept')}, fallback {g['fallback_rate']}, IoU>=0.5 {g.get('iou>=0.5')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
