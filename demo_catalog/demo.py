"""demo stage: a deterministic synthetic e-commerce catalog (Pillow + numpy, no downloads).

Writes, under the output directory, the catalog contract (catalog.csv, images/, queries.csv) plus
ground_truth/products.csv (clean attributes, product boxes, duplicate links, broken-row reasons) that
pipeline stages never read; it exists to score grounding and refinement.
"""
from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from demo_catalog.draw import TYPES, Look, sample_look
from demo_catalog.queries import query_text
from demo_catalog.scene import Box, render_scene
from demo_catalog.text import product_text, text_truth
from vlclip.params import load_params, section

NEAR_PHASH = 6  # bits of 64-bit pHash within which a near-copy must stay
BROKEN_REASONS = ("missing_image", "corrupt_image", "empty_title")
CATALOG_COLUMNS = ("product_id", "product_type", "title", "description", "image_path", "brand", "colour")
TRUTH_COLUMNS = ("product_id", "product_type", "colour", "accent", "pattern", "variant",
                 "x0", "y0", "x1", "y1", "duplicate_of", "broken",
                 "colour_text", "accent_text", "pattern_text", "variant_text", "description_kind")
# Shares of query granularities; accent forms need a patterned product.
QUERY_WEIGHTS = {("colour",): 0.15, ("colour", "pattern"): 0.25, ("colour", "pattern", "variant"): 0.25,
                 ("colour", "pattern", "accent"): 0.15, ("pattern", "variant", "accent"): 0.1,
                 ("colour", "variant"): 0.1}


@dataclass(frozen=True)
class DemoParams:
    seed: int = 0
    n_products: int = 1500
    image_size: int = 192
    duplicate_rate: float = 0.03
    n_broken: int = 6


@dataclass
class _Row:
    product_id: str
    look: Look
    stream: int                 # per-row random stream, so rows do not depend on each other's draws
    duplicate_of: str = ""      # product_id of the original whose image this one copies
    broken: str = ""
    box: Box | None = None
    text: dict = field(default_factory=dict)  # surface phrase per attribute + description kind (truth)


def _rng(params: DemoParams, *stream: int) -> np.random.Generator:
    return np.random.default_rng([params.seed, *stream])


def plan(params: DemoParams) -> list[_Row]:
    """Attributes, ids, duplicate links and broken reasons of every row, before anything is drawn."""
    if params.n_products < 2 or params.n_broken < 0 or not 0 <= params.duplicate_rate < 0.5:
        raise ValueError(f"demo params out of range: {params}")
    rng = _rng(params, 0)
    n_dup = int(round(params.duplicate_rate * params.n_products))
    n_orig = params.n_products - n_dup
    types = [TYPES[i % len(TYPES)] for i in range(n_orig)]  # balanced, so every type appears from n >= 10
    looks = [sample_look(rng, types[i]) for i in rng.permutation(n_orig)]
    sources = rng.choice(n_orig, n_dup, replace=False)
    entries = [(look, -1) for look in looks] + [(looks[s], int(s)) for s in sources]
    order = rng.permutation(len(entries))
    pos_of = {int(old): new for new, old in enumerate(order)}
    rows = []
    for new, old in enumerate(order):
        look, src = entries[old]
        dup = f"P{pos_of[src] + 1:06d}" if src >= 0 else ""
        rows.append(_Row(f"P{new + 1:06d}", look, int(new) + 1, duplicate_of=dup))
    _mark_broken(rows, params.n_broken)
    return rows


def _mark_broken(rows: list[_Row], n_broken: int) -> None:
    """Spread broken rows evenly, on rows outside every duplicate pair so duplicates stay scoreable."""
    paired = {r.duplicate_of for r in rows if r.duplicate_of} | {r.product_id for r in rows if r.duplicate_of}
    eligible = [i for i, r in enumerate(rows) if r.product_id not in paired]
    if n_broken > len(eligible):
        raise ValueError(f"n_broken={n_broken} exceeds the {len(eligible)} rows outside duplicate pairs")
    taken: set[int] = set()
    for k in range(n_broken):
        target = (k + 0.5) * len(rows) / n_broken
        i = min((i for i in eligible if i not in taken), key=lambda i: abs(i - target))
        taken.add(i)
        rows[i].broken = BROKEN_REASONS[k % len(BROKEN_REASONS)]


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def near_copy(data: bytes, box: Box, size: int, strength: float,
              rng: np.random.Generator) -> tuple[Image.Image, Box]:
    """Zoom by up to 2-5% x strength and shift by a few px (no empty border); map the product box along."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    zoom = 1 + strength * rng.uniform(0.02, 0.05)
    slack = size - size / zoom  # how far the sampled window can move inside the source
    ox, oy = rng.uniform(0, slack, 2) if slack > 0 else (0.0, 0.0)
    out = img.transform((size, size), Image.Transform.AFFINE, (1 / zoom, 0, ox, 0, 1 / zoom, oy),
                        resample=Image.Resampling.BICUBIC)
    x0, y0 = (int(np.clip(np.floor((v - o) * zoom), 0, size)) for v, o in ((box[0], ox), (box[1], oy)))
    x1, y1 = (int(np.clip(np.ceil((v - o) * zoom), 0, size)) for v, o in ((box[2], ox), (box[3], oy)))
    return out, (x0, y0, x1, y1)


def duplicate_image(data: bytes, box: Box, size: int, quality: int,
                    rng: np.random.Generator) -> tuple[bytes, Box]:
    """JPEG bytes of a near-copy at another quality. Re-uploads of one photo stay pHash-close, so a copy
    farther than NEAR_PHASH bits is redrawn with half the change (the last try is a pure re-encode)."""
    original = imagehash.phash(Image.open(io.BytesIO(data)))
    for strength in (1.0, 0.5, 0.25, 0.0):
        img, new_box = near_copy(data, box, size, strength, rng)
        out = _jpeg(img, 60 + (quality - 60 + int(rng.integers(3, 33))) % 36)  # never the source's quality
        if imagehash.phash(Image.open(io.BytesIO(out))) - original <= NEAR_PHASH:
            break
    return out, new_box


def _corrupt(data: bytes, k: int, rng: np.random.Generator) -> bytes:
    """Alternate a truncated JPEG (valid header, cut body) with garbage bytes named .jpg."""
    if k % 2 == 0:
        return data[: int(len(data) * rng.uniform(0.3, 0.6))]
    return rng.integers(0, 256, int(rng.integers(500, 3000)), dtype=np.uint8).tobytes()


def render_images(rows: list[_Row], params: DemoParams, image_dir: Path, log=print) -> int:
    """Draw originals, then near-copies, write JPEGs (or the broken variants); return images written."""
    by_id = {r.product_id: r for r in rows}
    sources = {r.duplicate_of for r in rows if r.duplicate_of}
    encoded: dict[str, tuple[bytes, int]] = {}  # product_id -> (JPEG bytes, quality)
    written, n_corrupt = 0, 0
    for step, r in enumerate(sorted(rows, key=lambda r: bool(r.duplicate_of)), 1):
        rng = _rng(params, r.stream, 1)
        if r.duplicate_of:
            src = by_id[r.duplicate_of]
            src_data, src_quality = encoded[src.product_id]
            data, r.box = duplicate_image(src_data, src.box, params.image_size, src_quality, rng)
        else:
            img, r.box = render_scene(r.look, params.image_size, rng)
            quality = int(rng.integers(60, 96))
            data = _jpeg(img, quality)
            if r.product_id in sources:  # keep only what a near-copy will need
                encoded[r.product_id] = data, quality
        if r.broken == "missing_image":
            r.box = None
        elif r.broken == "corrupt_image":
            (image_dir / f"{r.product_id}.jpg").write_bytes(_corrupt(data, n_corrupt, rng))
            n_corrupt, r.box = n_corrupt + 1, None
        else:
            (image_dir / f"{r.product_id}.jpg").write_bytes(data)
        written += r.broken != "missing_image"
        if step % 250 == 0:
            log(f"demo: {step}/{len(rows)} images")
    return written


def catalog_rows(rows: list[_Row], params: DemoParams) -> list[dict]:
    """catalog.csv rows: noisy brand, title, description and colour column, from each row's own text stream
    (stream 2; images use stream 1, so text changes never move a pixel). Records the text truth on the rows."""
    out = []
    for r in rows:
        text, wording = product_text(r.look, _rng(params, r.stream, 2))
        if r.broken == "empty_title":
            text["title"] = ""
        r.text = text_truth(wording, text["title"], text["description"], text["colour"])
        out.append({"product_id": r.product_id, "product_type": r.look.product_type, **text,
                    "image_path": f"images/{r.product_id}.jpg"})
    return out


def _matches(look: Look, query_look: Look, attrs: tuple[str, ...]) -> bool:
    return look.product_type == query_look.product_type and all(
        getattr(look, a) == getattr(query_look, a) for a in attrs)


def make_queries(rows: list[_Row], params: DemoParams) -> list[dict]:
    """About one query per two products, unique by text; relevant = every valid product that matches
    all the attributes the query states."""
    rng = _rng(params, 0, 3)
    valid = [r for r in rows if not r.broken]
    forms, weights = list(QUERY_WEIGHTS), np.asarray(list(QUERY_WEIGHTS.values()))
    seen: set[str] = set()
    out: list[dict] = []
    for i in rng.permutation(len(valid)):
        if len(seen) >= params.n_products // 2:
            break
        look = valid[i].look
        attrs = forms[rng.choice(len(forms), p=weights / weights.sum())]
        if "accent" in attrs and look.pattern == "solid":
            attrs = ("colour", "pattern", "variant")
        text = query_text(look, attrs, rng)
        if text in seen:
            continue
        seen.add(text)
        qid = f"Q{len(seen):05d}"
        out += [{"query_id": qid, "query": text, "product_id": r.product_id}
                for r in valid if _matches(r.look, look, attrs)]
    return out


def truth_rows(rows: list[_Row]) -> list[dict]:
    out = []
    for r in rows:
        box = r.box if r.box is not None else ("", "", "", "")
        out.append({"product_id": r.product_id, "product_type": r.look.product_type, "colour": r.look.colour,
                    "accent": r.look.accent, "pattern": r.look.pattern, "variant": r.look.variant,
                    "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3],
                    "duplicate_of": r.duplicate_of, "broken": r.broken, **r.text})
    return out


def _write_csv(path: Path, columns, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def build_catalog(params: DemoParams, out_dir: Path, log=print) -> dict:
    """Write the whole demo catalog under out_dir and return summary counts."""
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ground_truth").mkdir(exist_ok=True)
    for stale in image_dir.glob("*.jpg"):  # a file left from another seed would hide a "missing image" row
        stale.unlink()
    rows = plan(params)
    written = render_images(rows, params, image_dir, log)
    queries = make_queries(rows, params)
    _write_csv(out_dir / "catalog.csv", CATALOG_COLUMNS, catalog_rows(rows, params))
    _write_csv(out_dir / "queries.csv", ("query_id", "query", "product_id"), queries)
    _write_csv(out_dir / "ground_truth" / "products.csv", TRUTH_COLUMNS, truth_rows(rows))
    return {"n_products": len(rows), "n_duplicates": sum(bool(r.duplicate_of) for r in rows),
            "n_broken": sum(bool(r.broken) for r in rows), "n_images": written,
            "n_queries": len({q["query_id"] for q in queries}), "n_query_rows": len(queries),
            "n_types": len({r.look.product_type for r in rows})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the synthetic demo catalog.")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/demo", type=Path)
    ap.add_argument("--n-products", type=int, default=None, help="override demo.n_products")
    ap.add_argument("--seed", type=int, default=None, help="override demo.seed")
    ap.add_argument("--catalog", type=Path, help="the pipeline's catalog (catalog.path): when it is not --out, "
                    "the demo is not built and --out only says so")
    args = ap.parse_args(argv)
    if args.catalog is not None and args.catalog.resolve() != args.out.resolve():
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "NOT_BUILT.txt").write_text(f"catalog.path is {args.catalog}; the demo catalog is built only "
                                                f"when catalog.path is {args.out}.\n")
        print(f"demo: skipped, the pipeline reads {args.catalog}")
        return 0
    params = section(DemoParams, load_params(args.params), "demo")
    if args.n_products is not None:
        params = replace(params, n_products=args.n_products)
    if args.seed is not None:
        params = replace(params, seed=args.seed)
    summary = build_catalog(params, args.out)
    print("demo: " + ", ".join(f"{k}={v}" for k, v in summary.items()) + f" -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
