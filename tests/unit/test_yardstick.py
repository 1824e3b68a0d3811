"""The icon yardstick builder on a tiny icon tree made here (PNG icons; real themes also ship SVG)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image, ImageDraw

from yardstick.icons import build, dominant_colour
from yardstick.text import description, title
from yardstick.themes import find_icons

SHAPES = {"printer": "rectangle", "input-mouse": "ellipse", "edit-cut": "polygon"}


def _icon(path, shape: str, rgb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    if shape == "polygon":
        draw.polygon([(4, 44), (24, 4), (44, 44)], fill=(*rgb, 255))
    else:
        getattr(draw, shape)((6, 10, 42, 38), fill=(*rgb, 255))
    im.save(path)


@pytest.fixture(scope="module")
def icon_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("icons")
    for k, theme in enumerate(("Papirus", "breeze", "oxygen")):
        for name, shape in SHAPES.items():
            _icon(root / theme / "48x48" / "devices" / f"{name}.png", shape, (200, 40 + 60 * k, 40))
            _icon(root / theme / "16x16" / "devices" / f"{name}.png", shape, (0, 0, 0))  # smaller: not chosen
        _icon(root / theme / "symbolic" / "printer-symbolic.png", "ellipse", (0, 0, 0))
    return root


def test_find_icons_takes_the_largest_non_symbolic_drawing_per_theme(icon_root):
    found = find_icons(icon_root, ("Papirus", "breeze", "oxygen", "Tango"), set(SHAPES))
    assert set(found) == set(SHAPES) and all(set(t) == {"Papirus", "breeze", "oxygen"} for t in found.values())
    assert all("48x48" in str(p) for t in found.values() for p in t.values())


def test_build_writes_a_contract_catalog_with_truth_and_queries(icon_root, tmp_path):
    stats = build(icon_root, tmp_path / "cat", seed=1, size=96, log=lambda *_: None)
    assert stats == {"products": 9, "objects": 3, "types": 3, "themes": 3, "queries": 6}
    catalog = list(csv.DictReader(open(tmp_path / "cat" / "catalog.csv", encoding="utf-8")))
    truth = {r["product_id"]: r for r in csv.DictReader(open(tmp_path / "cat" / "ground_truth" / "products.csv"))}
    assert {"product_id", "product_type", "title", "description", "image_path"} <= set(catalog[0])
    for row in catalog:
        t = truth[row["product_id"]]
        image = Image.open(tmp_path / "cat" / row["image_path"])
        assert image.size == (96, 96)
        x0, y0, x1, y1 = (int(t[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96 and (x1 - x0) >= 0.3 * 96 * 0.8
    queries = list(csv.DictReader(open(tmp_path / "cat" / "queries.csv")))
    plain = [q for q in queries if q["query"] == "printer"]
    assert len(plain) == 3  # every theme's printer is relevant to "printer"


def test_text_carries_the_object_under_noise():
    rng = np.random.default_rng(0)
    titles = [title("cassette tape", "blue", rng)[0] for _ in range(200)]
    assert any(t.isupper() for t in titles) and any("[" in t or "**" in t or "⭐" in t for t in titles)
    assert sum("cassette" in t.lower() for t in titles) == 200
    descriptions = [description("cassette tape", "blue", rng) for _ in range(200)]
    assert 5 <= sum(d == "" for d in descriptions) <= 40
    assert any("<p>" in d for d in descriptions)


def test_dominant_colour_names_the_icon_colour():
    red = Image.new("RGBA", (8, 8), (210, 35, 30, 255))
    assert dominant_colour(red) == "red"
