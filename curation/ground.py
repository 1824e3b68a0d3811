"""ground: crop each product with a detector prompted by its product type; keep the full image
when the best box scores under the threshold tau (fallback).

boxes.csv: product_id, the square crop box x0..y1, the box grounding kept bx0..by1 (the detector's
box, or the full image on fallback; pixels), score, fallback, crop_path."""
from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from curation.detectors import (
    ClipWindowParams,
    ClipWindows,
    GroundingDino,
    GroundingDinoParams,
    Salient,
    WindowParams,
)
from vlclip.params import load_params, section


@dataclass(frozen=True)
class GroundParams:
    backend: str = "salient"
    threshold: float = 0.35
    margin: float = 0.08
    crop_size: int = 128
    synonyms: dict[str, list[str]] = field(default_factory=dict)
    windows: WindowParams = field(default_factory=WindowParams)
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


def ground_one(detector, image: Image.Image, product_type: str, p: GroundParams) -> dict:
    """-> box (pixels), score, fallback flag, and the crop image."""
    w, h = image.size
    box, score = detector.detect(image, product_type)
    fallback = score < p.threshold
    x0, y0, x1, y1 = (0, 0, w, h) if fallback else square_box(box, w, h, p.margin)
    kept = (0, 0, w, h) if fallback else tuple(round(float(v)) for v in box * np.array([w, h, w, h]))
    crop = image.crop((x0, y0, x1, y1)).convert("RGB")
    crop.thumbnail((p.crop_size, p.crop_size), Image.BICUBIC)
    return {"x0": x0, "y0": y0, "x1": x1, "y1": y1, **dict(zip(("bx0", "by0", "bx1", "by1"), kept)),
            "score": round(score, 4), "fallback": fallback, "crop": crop}


def _clip_windows(p: GroundParams, products: pd.DataFrame, scout: str | None) -> ClipWindows:
    if not scout:
        raise ValueError("ground.backend clip_windows needs --scout (a CLIP checkpoint directory)")
    from vlclip.encoder import load_encoder

    det = ClipWindows(load_encoder(scout), products["product_type"].tolist(), p.clip_windows, p.windows, p.synonyms)
    sample = products.sample(min(len(products), p.clip_windows.calibration_images), random_state=0)
    images = []
    for path in sample["image_path"]:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    t, acc = det.calibrate(images, sample["product_type"].tolist())
    print(f"ground[clip_windows]: temperature {t:.3f} fitted on {len(images)} full images; the CLIP names "
          f"their type for {acc:.3f} (chance {1 / len(det.types):.3f})", flush=True)
    return det


# name -> (ground params, products, scout checkpoint) -> detector with .detect(image, product_type)
BACKENDS = {
    "salient": lambda p, products, scout: Salient(p.windows),
    "clip_windows": _clip_windows,
    "grounding_dino": lambda p, products, scout: GroundingDino(p.grounding_dino, p.synonyms),
}


def make_detector(p: GroundParams, products: pd.DataFrame, scout: str | None = None):
    if p.backend not in BACKENDS:
        raise ValueError(f"ground.backend must be one of {sorted(BACKENDS)}, got {p.backend!r}")
    return BACKENDS[p.backend](p, products, scout)


def preview(products: pd.DataFrame, boxes: pd.DataFrame, path: Path, n: int = 12) -> None:
    """A contact sheet: source images with their box (green = crop, red = fallback) and a legend."""
    rows = boxes.head(n).merge(products[["product_id", "image_path", "product_type"]], on="product_id")
    tile, cols = 160, 4
    height = -(-len(rows) // cols) * (tile + 14)
    sheet = Image.new("RGB", (cols * tile, height + 16), "white")
    ImageDraw.Draw(sheet).text((2, height + 2), "green: the crop kept (type, score)   red: score under tau, the "
                               "full image is kept", fill="black")
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
    ap.add_argument("--scout", help="CLIP checkpoint directory for the clip_windows backend")
    ap.add_argument("--out", required=True)
    ap.add_argument("--preview", help="contact sheet PNG of boxes")
    args = ap.parse_args(argv)
    p = section(GroundParams, load_params(args.params), "ground")
    products = pd.read_parquet(args.products)
    detector = make_detector(p, products, args.scout)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "crops").mkdir(parents=True)
    rows, t0 = [], time.time()
    for i, r in enumerate(products.itertuples(), 1):
        with Image.open(r.image_path) as im:
            g = ground_one(detector, im, r.product_type, p)
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
