"""embed: image, text and fused embeddings per product from the champion model, tagged with its version."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vlclip.params import load_params, section
from vlclip.tracking import MlflowParams, tracking_uri


@dataclass(frozen=True)
class EmbedParams:
    batch_size: int = 128


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def embed_products(encoder, table: pd.DataFrame, batch_size: int, version: str) -> pd.DataFrame:
    """table: product_id, product_type, title, image_path (crop), query. Images are read in batches so
    memory stays flat on large catalogs."""
    img = []
    for i in range(0, len(table), batch_size):
        batch = []
        for p in table["image_path"].iloc[i:i + batch_size]:
            with Image.open(p) as im:
                batch.append(im.convert("RGB"))
        img.append(encoder.encode_images(batch, batch_size))
    image = np.concatenate(img) if img else np.zeros((0, 0), np.float32)
    text = encoder.encode_text(table["query"].tolist(), batch_size)
    fused = unit(image + text)  # one vector for "more like this": what it looks like + how it is described
    out = table[["product_id", "product_type", "title", "image_path"]].copy()
    out["image_embedding"] = list(image.astype(np.float32))
    out["text_embedding"] = list(text.astype(np.float32))
    out["fused_embedding"] = list(fused.astype(np.float32))
    out["model_version"] = version
    # second resolution, UTC: Feast materializes by event time
    out["event_timestamp"] = pd.Timestamp(datetime.now(UTC).replace(microsecond=0))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--receipt", required=True, help="register receipt (runs embed after register)")
    ap.add_argument("--products", required=True)
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    p, mp = section(EmbedParams, params, "embed"), section(MlflowParams, params, "mlflow")
    # The registry's champion alias, not the receipt, decides: after a manual `vlclip promote`,
    # `dvc repro -sf embed` re-embeds with the new champion. The receipt only orders the stages.
    from registry.load import load_champion

    encoder, version = load_champion(tracking_uri(mp), mp.model_name, alias="champion")
    registered = json.loads(Path(args.receipt).read_text())["champion"]
    if str(registered) != version:
        print(f"embed: champion is version {version} (register's receipt said {registered})")
    products = pd.read_parquet(args.products)
    crops = pd.read_csv(args.boxes, dtype={"product_id": str})[["product_id", "crop_path"]]
    queries = pd.read_parquet(args.queries)[["product_id", "query"]]
    table = (products[["product_id", "product_type", "title"]].merge(crops, on="product_id")
             .merge(queries, on="product_id").rename(columns={"crop_path": "image_path"}))
    out = embed_products(encoder, table, p.batch_size, version)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(args.out, index=False)
    print(f"embed: {len(out)} products x {encoder.dim}-d (image, text, fused) from "
          f"{mp.model_name} version {version} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
