"""ground: crop each product with a detector prompted by its product type; keep the full image
when the best box scores under the threshold tau (fallback)."""
from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from curation.detectors import ClipWindowParams, ClipWindows, GroundingDino, GroundingDinoParams
from vlclip.params import load_params, section

BACKENDS = ("clip_windows", "grounding_dino")


@dataclass(frozen=True)
class GroundParams:
    backend: str = "clip_windows"
    threshold: float = 0.35
    margin: float = 0.08
    crop_size: int = 128
    clip_windows: ClipWindowParams = field(default_factory=ClipWindowParams)
    grounding_dino: GroundingDinoParams = field(default_factory=GroundingDinoParams)


def square_box(box: np.ndarray, w: int, h: int, margin: float) -> tuple[int, int, int, int]:
    """Normalised box -> pixel box grown by `margin`, made square (so a centre-crop in the model's
    preprocessing cuts nothing) and shifted to stay inside the image where it fits."""
    x0, y0, x1, y1 = box * np.array([w, h, w, h])
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    side = min(side, max(w, h))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = float(np.clip(cx - side / 2, 0, max(w - side, 0)))
    top = float(np.clip(cy - side / 2, 0, max(h - side, 0)))
    return round(left), round(top), round(min(left + side, w)), round(min(top + side, h))


def ground_one(detector, image: Image.Image, product_type: str, description: str, p: GroundParams) -> dict:
    """-> box (pixels), score, fallback flag, and the crop image."""
    w, h = image.size
    box, score = detector.detect(image, product_type, description)
    fallback = score < p.threshold
    x0, y0, x1, y1 = (0, 0, w, h) if fallback else square_box(box, w, h, p.margin)
    crop = image.crop((x0, y0, x1, y1)).convert("RGB")
    crop.thumbnail((p.crop_size, p.crop_size), Image.BICUBIC)
    return {"x0": x0, "y0": y0, "x1": x1, "y1": y1, "score": round(score, 4), "fallback": fallback,
            "crop": crop}


def make_detector(p: GroundParams, descriptions: list[str], scout: str | None):
    if p.backend == "clip_windows":
        if not scout:
            raise ValueError("ground.backend clip_windows needs --scout (a CLIP checkpoint directory)")
        from vlclip.encoder import load_encoder

        return ClipWindows(load_encoder(scout), descriptions, p.clip_windows)
    if p.backend == "grounding_dino":
        return GroundingDino(p.grounding_dino)
    raise ValueError(f"ground.backend must be one of {BACKENDS}, got {p.backend!r}")


def preview(products: pd.DataFrame, boxes: pd.DataFrame, path: Path, n: int = 12) -> None:
    """A contact sheet: source images with their box (green = crop, red = fallback)."""
    rows = boxes.head(n).merge(products[["product_id", "image_path", "product_type"]], on="product_id")
    tile, cols = 160, 4
    sheet = Image.new("RGB", (cols * tile, -(-len(rows) // cols) * (tile + 14)), "white")
    for i, r in enumerate(rows.itertuples()):
        with Image.open(r.image_path) as im:
            im = im.convert("RGB")
            s = tile / max(im.size)
            draw = ImageDraw.Draw(im)
            draw.rectangle((r.x0, r.y0, r.x1 - 1, r.y1 - 1), outline="red" if r.fallback else "lime", width=3)
            im = im.resize((round(im.width * s), round(im.height * s)))
        x, y = (i % cols) * tile, (i // cols) * (tile + 14)
        sheet.paste(im, (x, y + 14))
        ImageDraw.Draw(sheet).text((x + 2, y + 1), f"{r.product_type} {r.score:.2f}", fill="black")
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--products", required=True, help="dedup products.parquet")
    ap.add_argument("--queries", required=True, help="refined queries.parquet (visual descriptions)")
    ap.add_argument("--scout", help="CLIP checkpoint directory for the clip_windows backend")
    ap.add_argument("--out", required=True)
    ap.add_argument("--preview", help="contact sheet PNG of boxes")
    args = ap.parse_args(argv)
    p = section(GroundParams, load_params(args.params), "ground")
    products = pd.read_parquet(args.products).merge(
        pd.read_parquet(args.queries)[["product_id", "query"]], on="product_id", how="left")
    missing = products.loc[products["query"].isna(), "product_id"].tolist()
    if missing:
        raise ValueError(f"no refined query for {len(missing)} product(s), e.g. {missing[:5]}")
    detector = make_detector(p, products["query"].tolist(), args.scout)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "crops").mkdir(parents=True)
    rows, t0 = [], time.time()
    for i, r in enumerate(products.itertuples(), 1):
        with Image.open(r.image_path) as im:
            g = ground_one(detector, im, r.product_type, r.query, p)
        crop_path = out / "crops" / Path(r.image_path).name
        g.pop("crop").save(crop_path, quality=95)
        rows.append({"product_id": r.product_id, **g, "crop_path": str(crop_path)})
        if i % 250 == 0 or i == len(products):
            print(f"ground: {i}/{len(products)} images ({time.time() - t0:.0f}s)", flush=True)
    boxes = pd.DataFrame(rows)
    boxes.to_csv(out / "boxes.csv", index=False)
    if args.preview:
        Path(args.preview).parent.mkdir(parents=True, exist_ok=True)
        preview(products, boxes, Path(args.preview))
    print(f"ground[{p.backend}]: {len(boxes)} crops, fallback rate {boxes['fallback'].mean():.3f} "
          f"(tau={p.threshold}), mean score {boxes['score'].mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
