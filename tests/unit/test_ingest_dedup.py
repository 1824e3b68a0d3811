import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curation.dedup import dedup, duplicate_groups, phash_bits
from curation.ingest import IngestParams, Split, find_catalog, ingest, read_catalog, split_of

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
    reasons = dict(zip(quarantine["row"], quarantine["reason"]))
    assert reasons[3] == "empty title"
    assert "duplicate product_id" in reasons[4]
    assert "not found" in reasons[5]
    assert "not decodable" in reasons[6]
    assert "too small" in reasons[7]
    assert set(quarantine["field"]) == {"title", "product_id", "image_path"}
    assert products.loc[products["product_id"] == "p0", "product_type"].item() == "dress"
    assert all(p.startswith("/") for p in products["image_path"])  # relative paths resolved


def test_missing_column_is_named(tmp_path):
    pd.DataFrame({"product_id": ["a"], "title": ["t"]}).to_csv(tmp_path / "catalog.csv", index=False)
    with pytest.raises(ValueError, match="product_type"):
        read_catalog(tmp_path / "catalog.csv")


def test_jsonl_and_parquet_read_the_same(catalog):
    df = read_catalog(catalog / "catalog.csv")
    df.to_json(catalog / "c.jsonl", orient="records", lines=True)
    df.to_parquet(catalog / "c.parquet")
    pd.testing.assert_frame_equal(read_catalog(catalog / "c.jsonl"), df)
    pd.testing.assert_frame_equal(read_catalog(catalog / "c.parquet"), df)


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


def test_duplicate_groups_are_transitive():
    base = np.zeros(64, bool)
    a, b, c = base.copy(), base.copy(), base.copy()
    b[:5] = True
    c[:10] = True  # a-c distance 10 > 8, but a-b and b-c are within 8
    assert len(set(duplicate_groups(np.stack([a, b, c]), 8))) == 1
