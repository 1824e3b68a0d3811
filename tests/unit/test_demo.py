"""demo stage: a small synthetic catalog is deterministic, complete, hard and internally consistent."""
from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import imagehash
import pytest
from PIL import Image

from demo_catalog.demo import DemoParams, build_catalog, main
from demo_catalog.draw import COLOURS, TYPES, VARIANTS
from vlclip.params import load_params, section

PARAMS = DemoParams(seed=3, n_products=40, image_size=192, duplicate_rate=0.1, n_broken=4)
PATTERN_WORDS = {"striped": {"striped", "stripe", "stripes"}, "dotted": {"dotted", "dots", "dot"},
                 "checked": {"checked", "check", "checks"}, "solid": {"solid", "plain"}}
# Commerce boilerplate every description carries besides care / feel / spec lines.
NOISE = re.compile(r"(?i)shipping|ships|returns|warranty|best seller|gift|stock|money back|imported|rated|"
                   r"collection|sku|item no|support|price match")
CARE = re.compile(r"(?i)wash|dry|breathable|soft|fabric|size|fit|comfort|cotton|dishwasher|wipe|clean|assembly|"
                  r"bulb|holds|capacity|dimensions|finished|lead-free|insole|wrinkle")


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = build_catalog(PARAMS, out, log=lambda _msg: None)
    truth = {r["product_id"]: r for r in _read(out / "ground_truth" / "products.csv")}
    catalog = {r["product_id"]: r for r in _read(out / "catalog.csv")}
    return out, summary, catalog, truth, _read(out / "queries.csv")


def test_params_section_matches_dataclass():
    params = section(DemoParams, load_params(Path(__file__).parents[2] / "params.yaml"), "demo")
    assert params.n_products >= 40 and params.image_size > 0


def test_same_seed_gives_identical_bytes_and_another_seed_differs(built, tmp_path):
    out = built[0]
    build_catalog(PARAMS, tmp_path / "again", log=lambda _msg: None)
    assert _digest(tmp_path / "again") == _digest(out)
    other = DemoParams(**{**PARAMS.__dict__, "seed": PARAMS.seed + 1})
    build_catalog(other, tmp_path / "other", log=lambda _msg: None)
    assert _digest(tmp_path / "other")["catalog.csv"] != _digest(out)["catalog.csv"]
    assert _digest(tmp_path / "other")["images/P000001.jpg"] != _digest(out)["images/P000001.jpg"]


def test_rows_ids_types_and_columns(built):
    _, summary, catalog, truth, _ = built
    assert len(catalog) == len(truth) == PARAMS.n_products == summary["n_products"]
    assert {r["product_type"] for r in catalog.values()} == set(TYPES)
    assert all(re.fullmatch(r"P\d{6}", pid) for pid in catalog)
    for pid, row in catalog.items():
        assert row["image_path"] == f"images/{pid}.jpg"
        assert row["product_type"] == truth[pid]["product_type"]
        assert truth[pid]["variant"] in VARIANTS[row["product_type"]]
    filled = sum(bool(r["colour"]) for r in catalog.values())
    assert 0 < filled < len(catalog), "the colour column must be filled on only part of the rows"


def test_boxes_inside_images_and_cover_a_fair_share(built):
    out, _, _, truth, _ = built
    size = PARAMS.image_size
    qualities = set()
    for pid, row in truth.items():
        if row["broken"] in ("missing_image", "corrupt_image"):
            assert row["x0"] == "", f"{pid}: a broken image has no box"
            continue
        with Image.open(out / "images" / f"{pid}.jpg") as im:
            assert im.format == "JPEG" and im.size == (size, size), pid
            qualities.add(tuple(im.quantization[0]))
        x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size, f"{pid}: box {x0, y0, x1, y1}"
        share = (x1 - x0) * (y1 - y0) / size ** 2
        assert 0.08 <= share <= 0.55, f"{pid}: product covers {share:.2f} of the frame"
    assert len(qualities) > 3, "JPEG quality should vary between images"


def test_products_are_placed_off_centre_in_varied_positions(built):
    truth = [r for r in built[3].values() if r["x0"]]
    centres = {((int(r["x0"]) + int(r["x1"])) // 16, (int(r["y0"]) + int(r["y1"])) // 16) for r in truth}
    assert len(centres) > len(truth) // 3


def _stated(query: str, gt: dict) -> tuple[str, ...]:
    """Attributes of product `gt` that the query text names (colour words are unambiguous: accent != colour)."""
    words = set(re.findall(r"[a-z]+", query))
    stated = [a for a in ("colour", "accent", "variant") if gt[a] and gt[a] in words]
    if words & PATTERN_WORDS[gt["pattern"]]:
        stated.append("pattern")
    return tuple(stated)


def test_query_relevance_matches_ground_truth(built):
    _, summary, _, truth, queries = built
    valid = [r for r in truth.values() if not r["broken"]]
    by_query: dict[str, tuple[str, set[str]]] = {}
    for q in queries:
        by_query.setdefault(q["query_id"], (q["query"], set()))[1].add(q["product_id"])
    texts = [text for text, _ in by_query.values()]
    assert len(texts) == len(set(texts)) == summary["n_queries"]
    assert PARAMS.n_products // 4 <= len(texts) <= PARAMS.n_products // 2
    for qid, (text, relevant) in by_query.items():
        first = truth[sorted(relevant)[0]]
        attrs = _stated(text, first)
        assert attrs, f"{qid} {text!r} states no attribute of {first['product_id']}"
        expected = {r["product_id"] for r in valid if r["product_type"] == first["product_type"]
                    and all(r[a] == first[a] for a in attrs)}
        assert relevant == expected, f"{qid} {text!r}: relevant {sorted(relevant)} != {sorted(expected)}"
    granularities = {len(_stated(t, truth[sorted(r)[0]])) for t, r in by_query.values()}
    assert len(granularities) >= 2, "queries should mix granularity"


def test_broken_rows_have_reasons_and_are_broken(built):
    out, summary, catalog, truth, queries = built
    broken = {pid: r["broken"] for pid, r in truth.items() if r["broken"]}
    assert len(broken) == PARAMS.n_broken == summary["n_broken"]
    assert set(broken.values()) == {"missing_image", "corrupt_image", "empty_title"}
    positions = sorted(int(pid[1:]) for pid in broken)
    assert positions[-1] - positions[0] > PARAMS.n_products // 2, "broken rows should be spread out"
    for pid, reason in broken.items():
        path = out / "images" / f"{pid}.jpg"
        if reason == "missing_image":
            assert not path.exists()
        elif reason == "corrupt_image":
            with pytest.raises(OSError):
                with Image.open(path) as im:
                    im.load()
        else:
            assert catalog[pid]["title"] == "" and path.exists()
    assert not {q["product_id"] for q in queries} & set(broken)


def test_duplicates_are_near_copies_with_reworded_text(built):
    out, summary, catalog, truth, _ = built
    dups = {pid: r["duplicate_of"] for pid, r in truth.items() if r["duplicate_of"]}
    assert len(dups) == round(PARAMS.duplicate_rate * PARAMS.n_products) == summary["n_duplicates"]
    for pid, src in dups.items():
        attrs = ("product_type", "colour", "accent", "pattern", "variant")
        assert [truth[pid][a] for a in attrs] == [truth[src][a] for a in attrs]
        a, b = (imagehash.phash(Image.open(out / "images" / f"{p}.jpg")) for p in (pid, src))
        assert a - b <= 8, f"{pid} is {a - b} pHash bits from its original {src}"
        assert (out / "images" / f"{pid}.jpg").read_bytes() != (out / "images" / f"{src}.jpg").read_bytes()
        assert catalog[pid]["description"] != catalog[src]["description"]


def test_text_is_noisy_but_states_every_visual_attribute(built):
    _, _, catalog, truth, _ = built
    html = 0
    for pid, row in catalog.items():
        desc = row["description"]
        assert NOISE.search(desc) and CARE.search(desc), f"{pid}: no non-visual noise in {desc!r}"
        html += bool(re.search(r"<(p|li|br|div)>|&amp;|&nbsp;", desc))
        gt = truth[pid]
        words = set(re.findall(r"[a-z]+", f"{row['title']} {desc} {row['colour']}".lower()))
        assert gt["colour"] in words and gt["variant"] in words, pid
        assert words & PATTERN_WORDS[gt["pattern"]], pid
        assert not gt["accent"] or gt["accent"] in words, pid
    assert html > len(catalog) // 2
    with_colour = sum(truth[pid]["colour"] in r["title"].lower() for pid, r in catalog.items())
    assert 0 < with_colour < len(catalog), "the colour should be in only some titles"
    assert len({r["title"] for r in catalog.values()}) > len(catalog) * 0.8


def test_main_reads_params_and_applies_overrides(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("demo: {seed: 5, n_products: 1000, image_size: 64, duplicate_rate: 0.1, n_broken: 3}\n")
    assert main(["--params", str(params), "--out", str(tmp_path / "cat"), "--n-products", "12", "--seed", "9"]) == 0
    assert len(_read(tmp_path / "cat" / "catalog.csv")) == 12
    assert "n_products=12" in capsys.readouterr().out
    assert all(c in COLOURS for c in (r["colour"] for r in _read(tmp_path / "cat" / "ground_truth" / "products.csv")))
