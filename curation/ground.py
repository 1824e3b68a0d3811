"""ground: crop each product with a detector prompted by its product type; keep the full image
when the best box scores under the threshold tau (fallback).

boxes.csv: product_id, the square crop box x0..y1, the box grounding kept bx0..by1 (the detector's
box, or the full image on fallback; pixels), score, fallback, crop_path."""
from __future__ import annotations

import argparse
import io
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
from vlclip.engine import ComputeParams, map_batches
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


@dataclass(frozen=True)
class DetectorRecipe:
    """How a worker builds its detector, wherever it runs (picklable; the model loads there). For
    clip_windows: the catalog's types and the temperature fitted on the driver."""
    params: GroundParams
    scout: str | None = None
    types: tuple[str, ...] = ()
    temperature: float = 1.0


def _clip_windows(r: DetectorRecipe) -> ClipWindows:
    if not r.scout:
        raise ValueError("ground.backend clip_windows needs --scout (a CLIP checkpoint directory)")
    from vlclip.encoder import load_encoder

    p = r.params
    det = ClipWindows(load_encoder(r.scout), list(r.types), p.clip_windows, p.windows, p.synonyms)
    det.temperature = r.temperature
    return det


# name -> recipe -> detector with .detect_batch(images, product_types)
BACKENDS = {
    "salient": lambda r: Salient(r.params.windows),
    "clip_windows": _clip_windows,
    "grounding_dino": lambda r: GroundingDino(r.params.grounding_dino, r.params.synonyms),
}


def prepare(p: GroundParams, products: pd.DataFrame | None, scout: str | None = None) -> DetectorRecipe:
    """The recipe for this catalog; clip_windows fits its temperature on the catalog's full images."""
    if p.backend not in BACKENDS:
        raise ValueError(f"ground.backend must be one of {sorted(BACKENDS)}, got {p.backend!r}")
    if p.backend != "clip_windows":
        return DetectorRecipe(p)
    det = _clip_windows(DetectorRecipe(p, scout, tuple(products["product_type"])))
    sample = products.sample(min(len(products), p.clip_windows.calibration_images), random_state=0)
    images = [_rgb(path) for path in sample["image_path"]]
    t, acc = det.calibrate(images, sample["product_type"].tolist())
    print(f"ground[clip_windows]: temperature {t:.3f} fitted on {len(images)} full images; the CLIP names "
          f"their type for {acc:.3f} (chance {1 / len(det.types):.3f})", flush=True)
    return DetectorRecipe(p, scout, tuple(det.types), t)


def make_detector(p: GroundParams, products: pd.DataFrame | None, scout: str | None = None):
    recipe = prepare(p, products, scout)
    return BACKENDS[p.backend](recipe)


def _rgb(path: str) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


class GroundWorker:
    """Boxes and crops for a batch of rows (image_path, product_type): what the engine runs per batch,
    here or in a Ray actor. The crop comes back encoded in its image's format."""

    def __init__(self, recipe: DetectorRecipe):
        self.recipe, self.detector = recipe, None

    def setup(self) -> None:
        self.detector = BACKENDS[self.recipe.params.backend](self.recipe)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        p = self.recipe.params
        with ThreadPoolExecutor(max(1, p.decode_threads)) as pool:
            images = list(pool.map(_rgb, batch["image_path"]))
        rows = []
        for path, g in zip(batch["image_path"], ground_batch(self.detector, images, batch["product_type"].tolist(), p)):
            buf = io.BytesIO()
            g.pop("crop").save(buf, format=_format(path), quality=95)
            rows.append({**_plain(g), "crop": buf.getvalue()})
        return pd.DataFrame(rows)


def _format(path: str) -> str:
    return Image.registered_extensions().get(Path(path).suffix.lower(), "JPEG")


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


def identity(recipe: DetectorRecipe) -> str:
    """What a box depends on besides its image and type: settings, code, and the detector's model
    and whatever it fitted on this catalog (clip_windows: its types and temperature)."""
    p, here = recipe.params, Path(__file__).parent
    parts: list = [asdict(p), code_digest(here / "ground.py", here / "detectors.py", here / "proposals.py")]
    if p.backend == "clip_windows":
        from vlclip.encoder import checkpoint_sha256

        parts += [checkpoint_sha256(recipe.scout), list(recipe.types), recipe.temperature]
    elif p.backend == "grounding_dino":
        model = Path(p.grounding_dino.model)
        parts += [sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in model.iterdir())
                  if model.is_dir() else p.grounding_dino.model]
    return digest("ground", *parts)


def ground_all(products: pd.DataFrame, recipe: DetectorRecipe, compute: ComputeParams, out: Path,
               cache: RowCache, progress: Progress) -> list[dict]:
    """boxes.csv rows in catalog order; an image grounded before with the same type and settings is
    taken from the cache (row and crop), the rest go to the engine's workers in batches."""
    ident = identity(recipe)
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
    frames = map_batches(GroundWorker(recipe), todo[["image_path", "product_type"]], recipe.params.batch_size, compute)
    done = 0
    for frame in frames:
        batch, made = todo.iloc[done:done + len(frame)], {}
        done += len(frame)
        for r, g in zip(batch.itertuples(), frame.to_dict("records")):
            crop_path = out / "crops" / Path(r.image_path).name
            crop_path.write_bytes(g.pop("crop"))
            key = todo_keys[r.product_id]
            cache.keep_file(key, ".jpg", crop_path)
            made[key] = json.dumps(g).encode()
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
    params = load_params(args.params)
    p = section(GroundParams, params, "ground")
    compute = section(ComputeParams, params, "compute")
    products = pd.read_parquet(args.products)
    recipe = prepare(p, products, args.scout)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "crops").mkdir(parents=True)
    progress = Progress("ground", len(products))
    with RowCache(args.cache) as cache:
        rows = ground_all(products, recipe, compute, out, cache, progress)
        cache.retain_used()
    boxes = pd.DataFrame(rows)
    boxes.to_csv(out / "boxes.csv", index=False)
    if args.preview:
        Path(args.preview).parent.mkdir(parents=True, exist_ok=True)
        preview(products, boxes, Path(args.preview))
    report = progress.save(args.throughput, backend=p.backend, batch_size=p.batch_size, engine=compute.engine)
    print(f"ground: {cache.report()}")
    print(f"ground[{p.backend}]: {len(boxes)} crops, fallback rate {boxes['fallback'].mean():.3f} "
          f"(tau={p.threshold}), mean score {boxes['score'].mean():.3f}; {report['items_per_s']} images/s, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
