"""demo stage: a small synthetic catalog is deterministic, complete, hard and internally consistent."""
from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from pathlib import Path

import imagehash
import pytest
from PIL import Image

import demo_catalog.demo as demo_module
import demo_catalog.text as text_module
from demo_catalog.demo import DemoParams, build_catalog, catalog_rows, main, plan, truth_rows
from demo_catalog.draw import COLOURS, TYPES, VARIANTS
from demo_catalog.lexicon import COLOUR_NAMES, MISSPELL, PATTERN_ADJ, PATTERN_NOUNS, VARIANT_NAMES, has_phrase, tokens
from vlclip.params import load_params, section

PARAMS = DemoParams(seed=3, n_products=40, image_size=192, duplicate_rate=0.1, n_broken=4)
# Text tests need no image; many broken rows put blank titles (whose attributes go unsaid) in the sample.
TEXT_PARAMS = DemoParams(seed=11, n_products=400, image_size=64, duplicate_rate=0.03, n_broken=30)
ATTRS = ("colour", "accent", "pattern", "variant")
PATTERN_WORDS = {"striped": {"striped", "stripe", "stripes"}, "dotted": {"dotted", "dots", "dot"},
                 "checked": {"checked", "check", "checks"}, "solid": {"solid", "plain"}}
# Commerce boilerplate every description carries besides care / feel / spec lines.
NOISE = re.compile(r"(?i)shipp?ing|ships|returns|warranty|best seller|gift|stock|money back|imported|rated|"
                   r"coll?ection|sku|item no|support|price match|screen|placement")
CARE = re.compile(r"(?i)wash|dry|breathable|soft|fabric|size|fit|comfort|cotton|dishwasher|wipe|clean|assembly|"
                  r"bulb|holds|capacity|dimensions|finished|lead-free|insole|wrinkle")
# Every sentence of a "mixed" description sells as well as describes.
SELLING = re.compile(r"(?i)free|loved|stock|order|grab|bestselling|ships|gift|deliv|fast")


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


@pytest.fixture(scope="module")
def texts():
    """Text and truth of a 400-product catalog, without drawing a single image."""
    rows = plan(TEXT_PARAMS)
    catalog = catalog_rows(rows, TEXT_PARAMS)
    return catalog, truth_rows(rows)


def _words(row: dict) -> list[str]:
    return tokens(row["title"]) + ["|"] + tokens(row["description"]) + ["|"] + tokens(row["colour"])


def _names(gt: dict, attr: str) -> tuple[str, ...]:
    """Every name the demo lexicon has for the product's value of `attr` (the canonical word first)."""
    if attr in ("colour", "accent"):
        return COLOUR_NAMES.get(gt[attr], ())
    if attr == "pattern":
        return PATTERN_ADJ[gt["pattern"]] + PATTERN_NOUNS[gt["pattern"]]
    return VARIANT_NAMES[(gt["product_type"], gt["variant"])]


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
        assert (catalog[pid]["title"], catalog[pid]["description"]) != \
            (catalog[src]["title"], catalog[src]["description"])


def _sentences(desc: str) -> list[str]:
    text = re.sub(r"<[^>]+>", "\n", desc.replace("<b>Details</b>:", "")).replace("&nbsp;", " ")
    return [s.strip() for s in re.split(r"\n| \| |(?<=[.!?])\s+", text) if s.strip()]


def test_normal_descriptions_are_noisy_html(texts):
    catalog, truth = texts
    normal = [row for row, gt in zip(catalog, truth) if gt["description_kind"] == "normal"]
    for row in normal:
        assert NOISE.search(row["description"]) and CARE.search(row["description"]), row
    assert sum(bool(re.search(r"<(p|li|br|div)>|&amp;|&nbsp;", r["description"])) for r in normal) > len(normal) // 2
    assert len({r["title"] for r in catalog}) > len(catalog) * 0.9


def test_truth_phrases_occur_in_the_text_and_unsaid_attributes_are_absent(texts):
    catalog, truth = texts
    for row, gt in zip(catalog, truth):
        words, title_desc = _words(row), tokens(row["title"]) + ["|"] + tokens(row["description"])
        for attr in ATTRS:
            phrase, names = gt[f"{attr}_text"], _names(gt, attr)
            if not gt[attr]:
                assert phrase == "", f"{row['product_id']}: no {attr}, yet text {phrase!r}"
            elif phrase:  # a real name of the true value, in the text, and the only one title + description use
                assert phrase in names and has_phrase(words, phrase), (row["product_id"], attr, phrase)
                used = [n for n in names if has_phrase(title_desc, n)]
                assert all(has_phrase(tokens(phrase), n) or has_phrase(tokens(n), phrase) for n in used), used
            else:
                leaked = [n for n in names if has_phrase(words, n)]
                assert leaked == [], f"{row['product_id']}: image-only {attr}={gt[attr]} is named as {leaked}"
    patterned = [gt for gt in truth if gt["accent"]]
    for attr, rows in (("colour", truth), ("pattern", truth), ("variant", truth), ("accent", patterned)):
        unsaid = sum(not gt[f"{attr}_text"] for gt in rows) / len(rows)
        assert {"colour": 0.05 < unsaid < 0.2, "pattern": 0.05 < unsaid < 0.2, "variant": 0 < unsaid < 0.12,
                "accent": 0.15 < unsaid < 0.4}[attr], f"{attr} stated nowhere on {unsaid:.2f} of products"
    column_only = sum(bool(gt["colour_text"]) and not has_phrase(tokens(r["title"] + " " + r["description"]),
                                                                 gt["colour_text"]) for r, gt in zip(catalog, truth))
    assert 0.05 < column_only / len(truth) < 0.2, "the colour should sometimes be in the colour column alone"
    shades = [gt["colour_text"] for gt in truth if gt["colour_text"]]
    assert 0.3 < sum(s in COLOURS for s in shades) / len(shades) < 0.65, "canonical colour names should be a minority"
    assert len(set(shades) - set(COLOURS)) >= 25, "colours should go by many shade names"
    patterns = {gt["pattern_text"] for gt in truth} - {"", "striped", "dotted", "checked", "solid"}
    assert len(patterns) >= 12, f"pattern surfaces {patterns}"


def test_description_kinds_come_at_their_rates_and_read_as_their_kind(texts):
    catalog, truth = texts
    counts = Counter(gt["description_kind"] for gt in truth)
    for kind, share in {"normal": 0.8, "thin": 0.1, "empty": 0.05, "mixed": 0.05}.items():
        tolerance = 3 * (share * (1 - share) / len(truth)) ** 0.5
        assert abs(counts[kind] / len(truth) - share) < tolerance, f"{kind}: {counts[kind]} of {len(truth)}"
    for row, gt in zip(catalog, truth):
        desc, kind = row["description"], gt["description_kind"]
        said = [gt[f"{a}_text"] for a in ATTRS if gt[f"{a}_text"]]
        if kind == "empty":
            assert desc == "", row
        elif kind == "thin":
            assert "<" not in desc and len(desc) <= 70 and len(_sentences(desc)) == 1, desc
            one = [gt[f"{a}_text"] for a in ("colour", "pattern", "variant")]  # an accent goes with its pattern
            assert sum(has_phrase(tokens(desc), p) for p in one if p) <= 1, desc
        elif kind == "mixed":
            for sentence in _sentences(desc):
                assert any(has_phrase(tokens(sentence), p) for p in said), f"no visual word: {sentence!r}"
                assert SELLING.search(sentence), f"no marketing: {sentence!r}"


def test_titles_carry_marketplace_noise(texts):
    catalog, _ = texts
    titles = [r["title"] for r in catalog if r["title"]]
    share = lambda pattern: sum(bool(re.search(pattern, t)) for t in titles) / len(titles)  # noqa: E731
    assert 0.04 < sum(t.isupper() for t in titles) / len(titles) < 0.2, "some titles should be ALL CAPS"
    assert 0.1 < share(r"^[\[【(*]|^NEW ARRIVAL") < 0.35, "some titles should open with a promotion"
    assert share(r"\b[A-Z]{2}-\d{4}\b") > 0.1, "model codes"
    assert 0.05 < share(r"(, [a-z ]+){4}$") < 0.25, "some titles should end in a tag list"
    assert share(r"[^\x00-\x7f®【】]") > 0.05, "brands with non-ASCII letters"
    typos = {bad for bads in MISSPELL.values() for bad in bads}
    assert sum(bool(typos & set(tokens(r["title"] + " " + r["description"]))) for r in catalog) > 20


def test_text_draws_never_move_an_image(built, tmp_path, monkeypatch):
    """Text has its own random stream: wholly other text leaves every image byte-identical."""
    def other_text(look, rng):
        rng.uniform(size=999)
        return {"brand": "B", "title": "t", "description": "", "colour": ""}, text_module.plan_wording(look, rng)
    monkeypatch.setattr(demo_module, "product_text", other_text)
    build_catalog(PARAMS, tmp_path, log=lambda _msg: None)
    images = {k: v for k, v in _digest(tmp_path).items() if k.startswith("images/")}
    assert images == {k: v for k, v in _digest(built[0]).items() if k.startswith("images/")}
    assert _read(tmp_path / "catalog.csv")[0]["title"] in ("t", "")


def test_main_reads_params_and_applies_overrides(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text("demo: {seed: 5, n_products: 1000, image_size: 64, duplicate_rate: 0.1, n_broken: 3}\n")
    assert main(["--params", str(params), "--out", str(tmp_path / "cat"), "--n-products", "12", "--seed", "9"]) == 0
    assert len(_read(tmp_path / "cat" / "catalog.csv")) == 12
    assert "n_products=12" in capsys.readouterr().out
    assert all(c in COLOURS for c in (r["colour"] for r in _read(tmp_path / "cat" / "ground_truth" / "products.csv")))
