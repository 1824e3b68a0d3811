"""ground: crop each product with a detector prompted by its product type; keep the full image
when the best box scores under the threshold tau (fallback).

boxes.csv: product_id, the square crop box x0..y1, the box grounding kept bx0..by1 (the detector's
box, or the full image on fallback; pixels), score, fallback, crop_path."""
from __future__ import annotations

import argparse
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
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
from vlclip.cache import RowCache, code_digest, digest, file_digest
from vlclip.params import load_params, section
from vlclip.progress import Progress


@dataclass(frozen=True)
class GroundParams:
    backend: str = "salient"
    threshold: float = 0.35
    margin: float = 0.08
    crop_size: int = 128
    batch_size: int = 32          # images per detector call
    decode_threads: int = 4       # threads decoding the next batch's images
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


def ground_batch(detector, images: list[Image.Image], types: list[str], p: GroundParams) -> list[dict]:
    """One detector call for the batch (a backend with only `detect` is called per image)."""
    if hasattr(detector, "detect_batch"):
        found = detector.detect_batch(images, types)
    else:
        found = [detector.detect(im, t) for im, t in zip(images, types)]
    return [crop_result(im, box, score, p) for im, (box, score) in zip(images, found)]


def ground_one(detector, image: Image.Image, product_type: str, p: GroundParams) -> dict:
    return ground_batch(detector, [image], [product_type], p)[0]


def crop_result(image: Image.Image, box: np.ndarray, score: float, p: GroundParams) -> dict:
    """-> box (pixels), score, fallback flag, and the crop image."""
    w, h = image.size
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


def read_ahead(batches, threads: int):
    """(rows, decoded RGB images) per batch; the next batch is decoded in threads while this one is
    grounded (Pillow releases the GIL while it decodes)."""
    def load(path: str) -> Image.Image:
        with Image.open(path) as im:
            return im.convert("RGB")

    with ThreadPoolExecutor(max(1, threads)) as pool:
        pending = None
        for batch in batches:
            ready = pool.map(load, batch["image_path"].tolist())
            if pending is not None:
                yield pending[0], list(pending[1])
            pending = (batch, ready)
        if pending is not None:
            yield pending[0], list(pending[1])


def identity(p: GroundParams, detector, scout: str | None) -> str:
    """What a box depends on besides its image and type: settings, code, and the detector's model
    and whatever it fitted on this catalog (clip_windows: its types and temperature)."""
    here = Path(__file__).parent
    parts: list = [asdict(p), code_digest(here / "ground.py", here / "detectors.py", here / "proposals.py")]
    if p.backend == "clip_windows":
        from vlclip.encoder import checkpoint_sha256

        parts += [checkpoint_sha256(scout), detector.types, detector.temperature]
    elif p.backend == "grounding_dino":
        model = Path(p.grounding_dino.model)
        parts += [sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in model.iterdir())
                  if model.is_dir() else p.grounding_dino.model]
    return digest("ground", *parts)


def ground_all(products: pd.DataFrame, detector, p: GroundParams, out: Path, cache: RowCache, ident: str,
               progress: Progress) -> list[dict]:
    """boxes.csv rows in catalog order; an image grounded before with the same type and settings is
    taken from the cache (row and crop), the rest go to the detector in batches."""
    keys = [digest(ident, t, file_digest(path)) for t, path in zip(products["product_type"], products["image_path"])]
    known = {k: json.loads(v) for k, v in cache.get_many(keys).items()}
    rows: dict[str, dict] = {}
    for r, key in zip(products.itertuples(), keys):
        crop_path = out / "crops" / Path(r.image_path).name
        if key in known and cache.place_file(key, ".jpg", crop_path):
            rows[r.product_id] = {"product_id": r.product_id, **known[key], "crop_path": str(crop_path)}
            progress.add()
    todo = products[[pid not in rows for pid in products["product_id"]]]
    todo_keys = dict(zip(products["product_id"], keys))
    batches = (todo.iloc[i:i + p.batch_size] for i in range(0, len(todo), p.batch_size))
    for batch, images in read_ahead(batches, p.decode_threads):
        made = {}
        for r, g in zip(batch.itertuples(), ground_batch(detector, images, batch["product_type"].tolist(), p)):
            crop_path = out / "crops" / Path(r.image_path).name
            g.pop("crop").save(crop_path, quality=95)
            key = todo_keys[r.product_id]
            cache.keep_file(key, ".jpg", crop_path)
            made[key] = json.dumps(_plain(g)).encode()
            rows[r.product_id] = {"product_id": r.product_id, **g, "crop_path": str(crop_path)}
        cache.put_many(made)
        progress.add(len(batch))
    return [rows[pid] for pid in products["product_id"]]


def _plain(g: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in g.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--products", required=True, help="dedup products.parquet")
    ap.add_argument("--scout", help="CLIP checkpoint directory for the clip_windows backend")
    ap.add_argument("--out", required=True)
    ap.add_argument("--preview", help="contact sheet PNG of boxes")
    ap.add_argument("--throughput", help="JSON: items, seconds, items/s, peak RSS of this run")
    ap.add_argument("--cache", help="per-image boxes and crops kept across runs")
    args = ap.parse_args(argv)
    p = section(GroundParams, load_params(args.params), "ground")
    products = pd.read_parquet(args.products)
    detector = make_detector(p, products, args.scout)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "crops").mkdir(parents=True)
    progress = Progress("ground", len(products))
    with RowCache(args.cache) as cache:
        rows = ground_all(products, detector, p, out, cache, identity(p, detector, args.scout), progress)
        cache.retain_used()
    boxes = pd.DataFrame(rows)
    boxes.to_csv(out / "boxes.csv", index=False)
    if args.preview:
        Path(args.preview).parent.mkdir(parents=True, exist_ok=True)
        preview(products, boxes, Path(args.preview))
    report = progress.save(args.throughput, backend=p.backend, batch_size=p.batch_size)
    print(f"ground: {cache.report()}")
    print(f"ground[{p.backend}]: {len(boxes)} crops, fallback rate {boxes['fallback'].mean():.3f} "
          f"(tau={p.threshold}), mean score {boxes['score'].mean():.3f}; {report['items_per_s']} images/s, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
