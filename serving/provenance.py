"""Where a served product came from: its source image, the crop box the grounding stage chose (or that
it fell back to the whole image) and the refined query it was trained and embedded with. The search
page shows them beside a result, so a user can see what the model saw and read."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

BOX = ["x0", "y0", "x1", "y1"]


@dataclass(frozen=True)
class ProvenancePaths:
    products: Path   # the dedup stage's table: product_id, image_path (the source image)
    boxes: Path      # the ground stage's boxes.csv: product_id, x0..y1 (the square crop), fallback
    queries: Path    # the refine stage's queries.parquet: product_id, query


def read_provenance(paths: ProvenancePaths, root: Path) -> pd.DataFrame:
    """-> source_path, x0..y1, fallback, query per product_id (index). A product without a box or a
    refined query keeps empty values there; relative paths (tables and images) are taken from `root`."""
    products = pd.read_parquet(Path(root) / paths.products, columns=["product_id", "image_path"])
    boxes = pd.read_csv(Path(root) / paths.boxes, usecols=["product_id", *BOX, "fallback"], dtype={"product_id": str})
    queries = pd.read_parquet(Path(root) / paths.queries, columns=["product_id", "query"])
    out = (products.rename(columns={"image_path": "source_path"})
           .merge(boxes, on="product_id", how="left").merge(queries, on="product_id", how="left"))
    out["source_path"] = [p if Path(p).is_absolute() else str(Path(root) / p) for p in out["source_path"]]
    return out.set_index(out["product_id"].astype(str)).drop(columns="product_id")


def describe(details: pd.DataFrame, product_id: str) -> dict:
    """The JSON the service answers for one product's provenance."""
    row = details.loc[product_id]
    box = None if row[BOX].isna().any() else [int(row[c]) for c in BOX]
    fallback = None if pd.isna(row["fallback"]) else str(row["fallback"]).lower() == "true"
    query = None if pd.isna(row["query"]) else str(row["query"])
    return {"query": query, "box": box, "fallback": fallback}
