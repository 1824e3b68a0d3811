"""Build the icon yardstick catalog: one product per (object, theme), composited onto clutter.

    python -m yardstick.icons --icons /usr/share/icons --out data/yardstick/icons

Writes catalog.csv, images/, queries.csv (shopper queries; relevant = every theme's drawing of the
object, or those of one colour) and ground_truth/products.csv (object, colour, theme, product box in
pixels, and the phrases the product's text states: object_text always, colour_text when the text
names the colour) that only the quality stage reads. Deterministic for a seed and a set of installed themes.
"""
from __future__ import annotations

import argparse
import csv
import functools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from yardstick.objects import COLOURS, OBJECTS, QUERY_TEMPLATES, THEMES
from yardstick.scene import compose
from yardstick.text import description, title
from yardstick.themes import find_icons, opaque_box, rasterise

CATALOG_COLUMNS = ("product_id", "product_type", "title", "description", "image_path", "brand", "color")
_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")  # the word tokens a query is scored by
TRUTH_COLUMNS = ("product_id", "product_type", "object", "colour", "theme", "icon", "x0", "y0", "x1", "y1",
                 "object_text", "colour_text")


@dataclass(frozen=True)
class Item:
    icon: str
    theme: str
    path: Path

    @property
    def object(self) -> str:
        return OBJECTS[self.icon][0]

    @property
    def product_type(self) -> str:
        return OBJECTS[self.icon][1]


def plan(found: dict[str, dict[str, Path]], min_themes: int) -> list[Item]:
    """Objects drawn by at least `min_themes` themes, one item per drawing, in a stable order."""
    return [Item(icon, theme, found[icon][theme]) for icon in sorted(found) if len(found[icon]) >= min_themes
            for theme in sorted(found[icon])]


def dominant_colour(icon: Image.Image) -> str:
    """The colour name nearest the median of the icon's opaque pixels."""
    rgba = np.asarray(icon, dtype=np.float32).reshape(-1, 4)
    rgb = rgba[rgba[:, 3] >= 128, :3]
    if len(rgb) == 0:
        return "grey"
    median = np.median(rgb, axis=0)
    names, refs = list(COLOURS), np.array(list(COLOURS.values()), dtype=np.float32)
    return names[int(np.argmin(((refs - median) ** 2).sum(axis=1)))]


def make_queries(truth: list[dict]) -> list[dict]:
    rows, by_object = [], {}
    for t in truth:
        by_object.setdefault(t["object"], []).append(t)
    for qi, (obj, items) in enumerate(sorted(by_object.items())):
        colour = Counter(t["colour"] for t in items).most_common(1)[0][0]
        for ti, template in enumerate(QUERY_TEMPLATES):
            relevant = [t for t in items if "{colour}" not in template or t["colour"] == colour]
            text = template.format(object=obj, colour=colour)
            rows += [{"query_id": f"Q{qi:03d}-{ti}", "query": text, "product_id": t["product_id"]} for t in relevant]
    return rows


def build(icon_root: Path, out: Path, seed: int = 0, size: int = 192, min_themes: int = 3, log=print) -> dict:
    found = find_icons(icon_root, THEMES, set(OBJECTS))
    items = plan(found, min_themes)
    if not items:
        raise FileNotFoundError(f"no object is drawn by {min_themes}+ of the themes {THEMES} under {icon_root}")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "ground_truth").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    distractor = functools.cache(lambda path: rasterise(path, 128))  # an icon is often picked again
    catalog, truth = [], []
    for n, item in enumerate(items):
        pid = f"I{n:05d}"
        icon = rasterise(item.path, 256)
        if opaque_box(icon) is None:
            continue
        others = [items[j] for j in rng.choice(len(items), size=2, replace=False) if items[j].icon != item.icon]
        image, box = compose(icon, [distractor(o.path) for o in others], size, rng)
        image.save(out / "images" / f"{pid}.jpg", quality=92)
        colour = dominant_colour(icon)
        t_title, brand = title(item.object, colour, rng)
        catalog.append({"product_id": pid, "product_type": item.product_type, "title": t_title,
                        "description": description(item.object, colour, rng), "image_path": f"images/{pid}.jpg",
                        "brand": brand, "color": colour if rng.random() < 0.4 else ""})
        said = set(_WORD.findall(" ".join(str(v) for v in catalog[-1].values()).lower()))
        truth.append({"product_id": pid, "product_type": item.product_type, "object": item.object, "colour": colour,
                      "theme": item.theme, "icon": item.icon, **dict(zip(("x0", "y0", "x1", "y1"), box)),
                      "object_text": item.object, "colour_text": colour if colour in said else ""})
        if (n + 1) % 100 == 0 or n + 1 == len(items):
            log(f"icons: {n + 1}/{len(items)} products")
    queries = make_queries(truth)
    _write(out / "catalog.csv", CATALOG_COLUMNS, catalog)
    _write(out / "queries.csv", ("query_id", "query", "product_id"), queries)
    _write(out / "ground_truth" / "products.csv", TRUTH_COLUMNS, truth)
    return {"products": len(catalog), "objects": len({t["object"] for t in truth}),
            "types": len({t["product_type"] for t in truth}), "themes": len({t["theme"] for t in truth}),
            "queries": len({q["query_id"] for q in queries})}


def _write(path: Path, columns, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--icons", default="/usr/share/icons", help="where the icon themes are installed")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-themes", type=int, default=3)
    args = ap.parse_args(argv)
    stats = build(Path(args.icons), Path(args.out), args.seed, min_themes=args.min_themes)
    print(f"icons: {stats['products']} products, {stats['objects']} objects in {stats['types']} types from "
          f"{stats['themes']} themes, {stats['queries']} queries -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
