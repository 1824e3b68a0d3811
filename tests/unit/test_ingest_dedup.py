import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curation.dedup import dedup, phash_bits
from curation.hamming import groups as duplicate_groups
from curation.hamming import near_pairs, plan
from curation.ingest import IngestParams, Split, catalog_frames, find_catalog, ingest, read_catalog, split_of
from curation.ingest import main as ingest_main

PARAMS = IngestParams(split=Split(0.8, 0.1, 0.1), min_image_side=16)


def _image(path, seed, size=6):
    """Smooth random blobs: what photos look like to pHash (low frequencies dominate)."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).resize((128, 128), Image.BICUBIC).save(path)


@pytest.fixture
def catalog(tmp_path):
    (tmp_path / "img").mkdir()
    for i in range(4):
        _image(tmp_path / "img" / f"{i}.jpg", i)
    (tmp_path / "img" / "bad.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    Image.new("RGB", (8, 8)).save(tmp_path / "img" / "tiny.png")
    rows = [("p0", "Dress", "t", "d", "img/0.jpg"), ("p1", "lamp", "t", "d", "img/1.jpg"),
            ("p2", "lamp", "", "d", "img/2.jpg"), ("p1", "lamp", "t", "d", "img/3.jpg"),
            ("p4", "mug", "t", "d", "img/missing.jpg"), ("p5", "mug", "t", "d", "img/bad.jpg"),
            ("p6", "mug", "t", "d", "img/tiny.png"), ("p7", "hat", "t", "", str(tmp_path / "img" / "3.jpg"))]
    pd.DataFrame(rows, columns=["product_id", "product_type", "title", "description", "image_path"]).to_csv(
        tmp_path / "catalog.csv", index=False)
    return tmp_path


def test_ingest_quarantines_each_broken_row_with_its_reason(catalog):
    products, quarantine = ingest(read_catalog(find_catalog(catalog)), catalog, PARAMS)
    assert sorted(products["product_id"]) == ["p0", "p1", "p7"]
    reasons = dict(zip(quarantine["row"], quarantine["reason"]))  # rows are lines of the file (header: 1)
    assert reasons[4] == "empty title"
    assert "duplicate product_id" in reasons[5]
    assert "not found" in reasons[6]
    assert "not decodable" in reasons[7]
    assert "too small" in reasons[8]
    assert set(quarantine["field"]) == {"title", "product_id", "image_path"}
    assert products.loc[products["product_id"] == "p0", "product_type"].item() == "dress"
    assert all(p.startswith("/") for p in products["image_path"])  # relative paths resolved


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_catalog_read_in_chunks_gives_what_it_gives_whole(catalog, fmt):
    """Chunks of 3 lines with one set of kept ids: the duplicate p1 falls in the second chunk."""
    df = pd.read_csv(catalog / "catalog.csv", dtype=str, keep_default_na=False)
    (catalog / "catalog.csv").unlink()
    path = catalog / f"catalog.{fmt}"
    {"csv": lambda: df.to_csv(path, index=False), "parquet": lambda: df.to_parquet(path, index=False),
     "jsonl": lambda: df.to_json(path, orient="records", lines=True)}[fmt]()
    whole, whole_q = ingest(read_catalog(path), catalog, PARAMS)
    seen: set[str] = set()
    parts = [ingest(chunk, catalog, PARAMS, seen) for chunk in catalog_frames(path, rows=3)]
    pd.testing.assert_frame_equal(pd.concat([p for p, _ in parts], ignore_index=True), whole)
    pd.testing.assert_frame_equal(pd.concat([q for _, q in parts], ignore_index=True), whole_q)
    assert "duplicate product_id" in whole_q.set_index("product_id").loc["p1", "reason"]


def test_ingest_stage_writes_products_and_quarantine_as_it_reads(catalog, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("out")
    (out / "params.yaml").write_text("ingest: {split: {train: 0.8, val: 0.1, test: 0.1}}\n")
    assert ingest_main(["--params", str(out / "params.yaml"), "--catalog", str(catalog), "--out", str(out)]) == 0
    whole, whole_q = ingest(read_catalog(catalog / "catalog.csv"), catalog, PARAMS)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "products.parquet"), whole)
    pd.testing.assert_frame_equal(pd.read_csv(out / "quarantine.csv", keep_default_na=False, dtype={"row": int}),
                                  whole_q.astype({"row": int}))
    assert "kept 3, quarantined 5" in capsys.readouterr().out


def _hostile(root):
    """Valid rows around every row-level defect ingest must quarantine, each with its reason."""
    (root / "img").mkdir()
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir()
    _image(outside / "secret.jpg", 9)
    (root / "img" / "link.jpg").symlink_to(outside / "secret.jpg")
    for i in range(3):
        _image(root / "img" / f"ok{i}.jpg", i)
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    frames[0].save(root / "img" / "anim.gif", save_all=True, append_images=frames[1:])
    Image.new("L", (3000, 3000)).save(root / "img" / "huge.png")
    lines = ["product_id,product_type,title,description,image_path",
             "ok0,mug,Red mug,,img/ok0.jpg",
             'bad1,mug,"Too, many",fields,img/ok1.jpg,extra',
             "bad2,mug,Nul\x00cut,,img/ok1.jpg",
             f"{'x' * 300},mug,Long id,,img/ok1.jpg",
             "bad4,!!!,No letters,,img/ok1.jpg",
             f"bad5,mug,Traversal,,../{outside.name}/secret.jpg",
             f"bad6,mug,Absolute outside,,{outside / 'secret.jpg'}",
             "bad7,mug,Symlink out,,img/link.jpg",
             "bad8,mug,Animated,,img/anim.gif",
             "bad9,mug,Too many pixels,,img/huge.png",
             "ok1,lamp,Lamp,,img/ok1.jpg",
             "ok2,lamp,Lamp,,img/ok2.jpg"]
    (root / "catalog.csv").write_text("\r\n".join(lines).replace("\\x00", "\x00") + "\r\n", encoding="utf-8-sig")
    return outside


def test_ingest_quarantines_hostile_rows_and_keeps_every_valid_one(tmp_path):
    root = tmp_path / "cat"
    root.mkdir()
    _hostile(root)
    params = IngestParams(split=Split(0.8, 0.1, 0.1), max_pixels=4_000_000)
    products, quarantine = ingest(read_catalog(find_catalog(root)), root, params)
    assert sorted(products["product_id"]) == ["ok0", "ok1", "ok2"]
    assert not any(c.startswith("_") for c in products.columns)
    why = dict(zip(quarantine["row"], quarantine["reason"]))
    assert list(why) == list(range(3, 12))  # the file's lines: header 1, ok0 2
    expected = ["malformed CSV line", "control character", "product_id too long", "no letter or digit",
                "outside the catalog", "outside the catalog", "outside the catalog", "animated", "too large"]
    assert [e in r for e, r in zip(expected, why.values())] == [True] * 9, why
    assert quarantine["product_id"].str.len().max() <= params.max_id_chars
    allowed = IngestParams(split=Split(0.8, 0.1, 0.1), extra_roots=(str(tmp_path / "cat-outside"),))
    kept, _ = ingest(read_catalog(find_catalog(root)), root, allowed)
    assert {"bad5", "bad6", "bad7"} <= set(kept["product_id"])  # an allow-listed root may be read


def test_malformed_jsonl_lines_are_quarantined_by_line(tmp_path):
    _image(tmp_path / "a.jpg", 1)
    row = '{"product_id": "a", "product_type": "mug", "title": "t", "description": "", "image_path": "a.jpg"}'
    other = row.replace('"a"', '"b"', 1)
    (tmp_path / "catalog.jsonl").write_text(f"{row}\n{{broken\n[1, 2]\n{other}\n")
    products, quarantine = ingest(read_catalog(tmp_path / "catalog.jsonl"), tmp_path, PARAMS)
    assert products["product_id"].tolist() == ["a", "b"]
    assert quarantine["row"].tolist() == [2, 3] and quarantine["reason"].str.startswith("malformed JSON").all()


def test_dedup_stores_exif_rotated_images_upright(tmp_path):
    from curation.dedup import main as dedup_main

    im = Image.new("RGB", (60, 30), "red")
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    im.save(tmp_path / "r.jpg", exif=exif)
    pd.DataFrame({"product_id": ["r"], "split": ["train"], "image_path": [str(tmp_path / "r.jpg")]}).to_parquet(
        tmp_path / "p.parquet")
    (tmp_path / "params.yaml").write_text("dedup: {hash_size: 8, max_distance: 8}\n")
    dedup_main(["--params", str(tmp_path / "params.yaml"), "--products", str(tmp_path / "p.parquet"),
                "--out", str(tmp_path / "out")])
    with Image.open(tmp_path / "out" / "images" / "r.jpg") as stored:
        assert stored.size == (30, 60)


@pytest.mark.parametrize("mode", ["I;16", "I", "CMYK", "P", "LA"])
def test_unusual_encodings_become_the_rgb_a_viewer_shows(mode):
    from curation.dedup import upright_rgb

    grey = np.tile(np.linspace(0, 255, 64), (16, 1)).astype(np.uint8)  # a left-to-right ramp
    rgb = Image.fromarray(grey).convert("RGB")
    encoded = {"I;16": Image.fromarray(grey.astype(np.uint16) * 257),  # 16-bit: Pillow's convert would clip
               "I": Image.fromarray(grey.astype(np.int32) * 257),
               "P": rgb.convert("P", palette=Image.Palette.ADAPTIVE)}.get(mode) or rgb.convert(mode)
    assert encoded.mode == mode
    got = np.asarray(upright_rgb(encoded), np.float64)
    assert got.shape == (16, 64, 3) and np.abs(got - np.asarray(rgb, np.float64)).mean() < 3


def test_missing_column_is_named(tmp_path):
    pd.DataFrame({"product_id": ["a"], "title": ["t"]}).to_csv(tmp_path / "catalog.csv", index=False)
    with pytest.raises(ValueError, match="product_type"):
        read_catalog(tmp_path / "catalog.csv")


def test_jsonl_and_parquet_read_the_same(catalog):
    df = read_catalog(catalog / "catalog.csv")
    data = df.drop(columns=["_line", "_malformed"])
    data.to_json(catalog / "c.jsonl", orient="records", lines=True)
    data.to_parquet(catalog / "c.parquet")
    assert df["_line"].tolist() == list(range(2, 2 + len(df)))  # CSV: the header is line 1
    for other in ("c.jsonl", "c.parquet"):
        again = read_catalog(catalog / other)
        assert again["_line"].tolist() == list(range(1, 1 + len(df))) and (again["_malformed"] == "").all()
        pd.testing.assert_frame_equal(again.drop(columns=["_line", "_malformed"]), data)


def test_split_is_deterministic_and_proportional():
    ids = [f"P{i:05d}" for i in range(5000)]
    splits = [split_of(i, Split(0.8, 0.1, 0.1)) for i in ids]
    assert splits == [split_of(i, Split(0.8, 0.1, 0.1)) for i in ids]
    share = pd.Series(splits).value_counts(normalize=True)
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["test"] - 0.1) < 0.02


def test_phash_groups_near_copies_and_keeps_held_out_copy(tmp_path):
    _image(tmp_path / "a.jpg", 1)
    with Image.open(tmp_path / "a.jpg") as im:  # re-encoded, resized, shifted copy
        im.resize((120, 120)).crop((2, 2, 118, 118)).save(tmp_path / "a2.jpg", quality=60)
    _image(tmp_path / "b.jpg", 2)
    bits = np.stack([phash_bits(str(tmp_path / n), 8) for n in ("a.jpg", "a2.jpg", "b.jpg")])
    labels = duplicate_groups(bits, 8)
    assert labels[0] == labels[1] != labels[2]
    products = pd.DataFrame({"product_id": ["x1", "x2", "x3"], "split": ["train", "test", "train"],
                             "phash": ["0", "1", "2"]})
    kept, groups = dedup(products, bits, 8)
    assert sorted(kept["product_id"]) == ["x2", "x3"]  # the test copy survives
    assert len(groups) == 2 and groups["kept"].sum() == 1
    same_split = products.assign(product_id=["z9", "a1", "x3"], split="train")
    kept, _ = dedup(same_split, bits, 8)
    assert sorted(kept["product_id"]) == ["x3", "z9"]  # a tie goes to the catalog's first row, not the smaller id


def test_duplicate_groups_are_transitive():
    base = np.zeros(64, bool)
    a, b, c = base.copy(), base.copy(), base.copy()
    b[:5] = True
    c[:10] = True  # a-c distance 10 > 8, but a-b and b-c are within 8
    assert len(set(duplicate_groups(np.stack([a, b, c]), 8))) == 1


def _exhaustive_pairs(bits: np.ndarray, t: int) -> set[tuple[int, int]]:
    b = bits.astype(np.int16)
    dist = b @ (1 - b).T + (1 - b) @ b.T
    return set(zip(*(x.tolist() for x in np.nonzero(np.triu(dist <= t, 1)))))


@pytest.mark.parametrize("n_bits,t", [(64, 8), (64, 0), (64, 2), (16, 3), (100, 6), (256, 12)])
def test_indexed_search_finds_exactly_the_exhaustive_pairs(n_bits, t):
    rng = np.random.default_rng(n_bits + t)
    bits = rng.random((400, n_bits)) < 0.5
    copies = bits[rng.integers(0, 400, 200)].copy()
    for row in copies:  # near copies at every distance up to t + 2, so some fall just outside
        row[rng.choice(n_bits, rng.integers(0, t + 3), replace=False)] ^= True
    bits = np.vstack([bits, copies, copies[:20]])  # and exact copies of copies
    i, j = near_pairs(bits, t)
    assert set(zip(i.tolist(), j.tolist())) == _exhaustive_pairs(bits, t)
    assert (i < j).all() and len(set(zip(i.tolist(), j.tolist()))) == len(i)  # each pair once


def test_block_plan_covers_every_bit_and_keeps_the_pigeonhole_budget():
    for n_bits, t in [(64, 8), (64, 1), (256, 30), (16, 3)]:
        blocks, budgets = plan(n_bits, t)
        assert [b.start for b in blocks[1:]] == [b.stop for b in blocks[:-1]]
        assert blocks[0].start == 0 and blocks[-1].stop == n_bits
        assert sum(budgets) == t - len(blocks) + 1 and min(budgets) >= 0


def test_groups_label_each_row_with_the_first_row_of_its_group():
    rng = np.random.default_rng(3)
    bits = rng.random((6, 64)) < 0.5
    bits[4] = bits[1]
    bits[5] = bits[1]
    bits[5, :3] ^= True
    labels = duplicate_groups(bits, 8)
    assert labels.tolist() == [0, 1, 2, 3, 1, 1]
    assert duplicate_groups(np.zeros((0, 64), bool), 8).tolist() == []
