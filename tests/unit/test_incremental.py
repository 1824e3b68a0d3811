"""Per-product results cached by content: a re-run computes only what changed, and gives what a
run without a cache gives."""
import numpy as np
import pandas as pd
from PIL import Image

from curation.dedup import main as dedup_main
from curation.refine import OpenAIParams, RefineParams, refine_products
from curation.refinement import RulesBackend, Window
from vlclip.cache import RowCache, code_digest, digest

PARAMS = RefineParams(backend="rules", max_rounds=5, min_words=10, max_words=20,
                      openai=OpenAIParams(model="m", temperature=0.0, timeout_s=5))


def _products(n: int) -> pd.DataFrame:
    colours, types = ["red", "navy", "green", "white"], ["dress", "lamp", "mug"]
    return pd.DataFrame([{"product_id": f"p{i}", "product_type": types[i % 3],
                          "title": f"{colours[i % 4]} {types[i % 3]} model {i}",
                          "description": f"A {colours[(i + 1) % 4]} striped {types[i % 3]}. Free shipping!"}
                         for i in range(n)])


def test_row_cache_stores_looks_up_and_keeps_only_what_a_run_used(tmp_path):
    with RowCache(tmp_path / "c.sqlite") as cache:
        cache.put_many({"a": b"1", "b": b"2"})
        (tmp_path / "made.bin").write_bytes(b"file")
        cache.keep_file("a", ".bin", tmp_path / "made.bin")
    with RowCache(tmp_path / "c.sqlite") as cache:
        assert cache.get_many(["a", "c"]) == {"a": b"1"} and (cache.hits, cache.misses) == (1, 1)
        assert cache.place_file("a", ".bin", tmp_path / "out.bin") and (tmp_path / "out.bin").read_bytes() == b"file"
        assert cache.retain_used() == 1  # b was not used by this run
    with RowCache(tmp_path / "c.sqlite") as cache:
        assert cache.get_many(["a", "b"]) == {"a": b"1"}
    off = RowCache(None)
    off.put_many({"a": b"1"})
    assert off.get_many(["a"]) == {} and not off.place_file("a", ".bin", tmp_path / "x")


def test_digests_tell_inputs_apart(tmp_path):
    assert digest("a", "bc") != digest("ab", "c")  # parts are length-prefixed
    assert digest({"x": 1, "y": 2}) == digest({"y": 2, "x": 1})
    (tmp_path / "m.py").write_text("x = 1\n")
    before = code_digest(tmp_path / "m.py")
    (tmp_path / "m.py").write_text("x = 2\n")
    assert code_digest(tmp_path / "m.py") != before


def test_refine_recomputes_only_changed_products_and_matches_an_uncached_run(tmp_path):
    products = _products(60)
    window = Window(10, 20)
    with RowCache(tmp_path / "r.sqlite") as cache:
        first, _ = refine_products(products, PARAMS, RulesBackend(window), cache=cache)
        assert (cache.misses, cache.hits) == (60, 0)
    changed = products.copy()
    changed.loc[7, "title"] = "yellow dress model 7"
    changed = changed.drop(index=[11])
    with RowCache(tmp_path / "r.sqlite") as cache:
        again, audit = refine_products(changed, PARAMS, RulesBackend(window), cache=cache)
        assert (cache.misses, cache.hits) == (1, 58)
    fresh, fresh_audit = refine_products(changed, PARAMS, RulesBackend(window))
    pd.testing.assert_frame_equal(again, fresh)
    assert audit == fresh_audit and "yellow" in again.loc[again["product_id"] == "p7", "query"].item()
    with RowCache(tmp_path / "r.sqlite") as cache:  # other settings: nothing is reused
        refine_products(changed, PARAMS.__class__(**{**PARAMS.__dict__, "max_words": 12}), RulesBackend(Window(10, 12)),
                        cache=cache)
        assert cache.hits == 0


def _blob(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).resize((96, 96), Image.BICUBIC).save(path)


def test_dedup_rehashes_only_changed_images_and_writes_the_same_output(tmp_path, capsys):
    (tmp_path / "img").mkdir()
    for i in range(12):
        _blob(tmp_path / "img" / f"{i}.png", i)
    _blob(tmp_path / "img" / "copy.png", 3)  # a duplicate of image 3
    rows = [{"product_id": f"p{i}", "split": "train", "image_path": str(tmp_path / "img" / f"{i}.png")}
            for i in range(12)]
    rows.append({"product_id": "p99", "split": "test", "image_path": str(tmp_path / "img" / "copy.png")})
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    (tmp_path / "params.yaml").write_text("dedup: {hash_size: 8, max_distance: 8}\n")

    def run(out, cache=True):
        dedup_main(["--params", str(tmp_path / "params.yaml"), "--products", str(tmp_path / "p.parquet"),
                    "--out", str(tmp_path / out), *(["--cache", str(tmp_path / "d.sqlite")] if cache else [])])
        return capsys.readouterr().out

    assert "12 computed, 0 from cache" in run("a")  # the byte-identical copy is hashed once
    _blob(tmp_path / "img" / "5.png", 55)  # one image edited
    assert "1 computed, 11 from cache" in run("b")
    run("c", cache=False)
    for name in ("products.parquet", "groups.csv"):
        b, c = (tmp_path / d / name for d in ("b", "c"))
        if name.endswith(".csv"):
            assert b.read_text() == c.read_text()
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(b).drop(columns="image_path"),
                                          pd.read_parquet(c).drop(columns="image_path"))
    for f in (tmp_path / "c" / "images").iterdir():
        assert (tmp_path / "b" / "images" / f.name).read_bytes() == f.read_bytes()
    assert "p3" not in pd.read_parquet(tmp_path / "b" / "products.parquet")["product_id"].tolist()  # p99 kept


def test_ground_regrounds_only_changed_images_and_writes_the_same_boxes(tmp_path, capsys):
    from curation.ground import main as ground_main

    (tmp_path / "img").mkdir()
    rows = []
    for i in range(10):
        _blob(tmp_path / "img" / f"{i}.jpg", i)
        rows.append({"product_id": f"p{i}", "product_type": ["mug", "lamp"][i % 2],
                     "image_path": str(tmp_path / "img" / f"{i}.jpg")})
    pd.DataFrame(rows).to_parquet(tmp_path / "p.parquet")
    (tmp_path / "params.yaml").write_text("ground: {backend: salient, batch_size: 4}\ncompute: {engine: local}\n")

    def run(out, cache=True):
        ground_main(["--params", str(tmp_path / "params.yaml"), "--products", str(tmp_path / "p.parquet"),
                     "--out", str(tmp_path / out), *(["--cache", str(tmp_path / "g.sqlite")] if cache else [])])
        return capsys.readouterr().out

    assert "ground: 10 computed, 0 from cache" in run("a")
    _blob(tmp_path / "img" / "4.jpg", 44)
    assert "ground: 1 computed, 9 from cache" in run("b")
    run("c", cache=False)
    b, c = (pd.read_csv(tmp_path / d / "boxes.csv") for d in ("b", "c"))
    pd.testing.assert_frame_equal(b.drop(columns="crop_path"), c.drop(columns="crop_path"))
    for f in (tmp_path / "c" / "crops").iterdir():
        assert (tmp_path / "b" / "crops" / f.name).read_bytes() == f.read_bytes()


def test_embed_reencodes_only_changed_products_and_a_new_model_everything(tmp_path):
    import torch

    from serving.embed import EmbedParams, embed_batches, embed_products
    from vlclip.encoder import Encoder, ModelParams, create

    torch.manual_seed(0)
    model, _, pre, tok = create(ModelParams("vlclip-tiny"))
    encoder = Encoder(model, pre, tok)
    for i in range(9):
        _blob(tmp_path / f"{i}.jpg", i)
    table = pd.DataFrame({"product_id": [f"p{i}" for i in range(9)], "product_type": "mug", "title": "t",
                          "image_path": [str(tmp_path / f"{i}.jpg") for i in range(9)],
                          "query": [f"red mug {i}" for i in range(9)]})

    def run(t, enc=encoder):
        with RowCache(tmp_path / "e.sqlite") as cache:
            frame = pd.concat(list(embed_batches(enc, t, EmbedParams(4), "1", cache=cache)), ignore_index=True)
            cache.retain_used()
            return frame, (cache.misses, cache.hits)

    assert run(table)[1] == (9, 0)
    edited = table.assign(query=table["query"].where(table["product_id"] != "p2", "blue mug"))
    again, counts = run(edited)
    assert counts == (1, 8)
    fresh = embed_products(encoder, edited, 4, "1")
    for col in ("image_embedding", "text_embedding", "fused_embedding"):
        np.testing.assert_allclose(np.stack(again[col]), np.stack(fresh[col]), atol=1e-6)
    other, _, _, _ = create(ModelParams("vlclip-tiny"))  # other weights: nothing is reused
    assert run(edited, Encoder(other, pre, tok))[1] == (9, 0)


def test_a_new_filler_word_re_refines_only_the_products_that_use_it(tmp_path):
    products = _products(60)
    products.loc[5, "description"] = "A vintage striped dress."  # uses the word before it is filler
    window = Window(10, 20)
    with RowCache(tmp_path / "r.sqlite") as cache:
        refine_products(products, PARAMS, RulesBackend(window), cache=cache)
    changed = products.copy()
    for i in (0, 1, 2):  # three types now say "vintage" in a title: the catalog's filler
        changed.loc[i, "title"] = "vintage " + changed.loc[i, "title"]
    with RowCache(tmp_path / "r.sqlite") as cache:
        again, _ = refine_products(changed, PARAMS, RulesBackend(window), cache=cache)
        assert (cache.misses, cache.hits) == (4, 56)  # p0-p2 changed, p5 holds the word
    fresh, _ = refine_products(changed, PARAMS, RulesBackend(window))
    pd.testing.assert_frame_equal(again, fresh)
