"""The evaluation protocol: decisions read validation, every variant sees one gallery and one query
set, and the bootstrap intervals match hand-computed ones."""
import numpy as np
import pandas as pd
import pytest

from training.bootstrap import paired_bootstrap, per_query
from training.data import Variant, pair_table, raw_text
from training.evaluate import eval_queries, shared_gallery


def test_bootstrap_of_known_cases_matches_hand_computed_intervals():
    ks = (1,)
    # two queries, one hit and one miss: a resampled mean is 0, 1/2 or 1 with chances 1/4, 1/2, 1/4,
    # so the 2.5th and 97.5th percentiles are 0 and 1
    out = paired_bootstrap({"vlclip": np.array([1, 9]), "b": np.array([1, 9])}, ks, "vlclip", 4000)
    assert out["vlclip"]["ci95"]["hits@1"] == [0.0, 1.0]
    # identical variants: every resampled difference is 0, never significant
    assert out["b"]["vs_vlclip"]["hits@1"] == {"diff": 0.0, "ci95": [0.0, 0.0], "significant": False}
    # one variant always first, the other never in the top 10: difference -1 in every resample
    out = paired_bootstrap({"vlclip": np.ones(50, int), "b": np.full(50, 11)}, (1, 10), "vlclip", 500)
    assert out["b"]["vs_vlclip"]["hits@10"] == {"diff": -1.0, "ci95": [-1.0, -1.0], "significant": True}
    assert out["b"]["vs_vlclip"]["mrr"]["ci95"] == pytest.approx([1 / 11 - 1] * 2)
    # chunking changes nothing
    r = {"vlclip": np.arange(1, 30), "b": np.arange(29, 0, -1)}
    assert paired_bootstrap(r, ks, "vlclip", 300, chunk=7) == paired_bootstrap(r, ks, "vlclip", 300, chunk=300)


def test_bootstrap_refuses_unpaired_queries():
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap({"vlclip": np.ones(3), "b": np.ones(4)}, (1,), "vlclip")


def test_per_query_values():
    v = per_query(np.array([1, 3, 12]), (1, 5))
    assert v["hits@1"].tolist() == [1, 0, 0] and v["hits@5"].tolist() == [1, 1, 0]
    assert v["mrr"] == pytest.approx([1, 1 / 3, 1 / 12])


def test_every_variant_is_scored_on_one_gallery_and_one_query_set(tmp_path):
    products = pd.DataFrame({"product_id": list("abcde"), "product_type": ["mug"] * 5,
                             "split": ["test", "test", "test", "val", "train"],
                             "image_path": [f"/img/{c}.jpg" for c in "abcde"],
                             "title": ["<b>Red</b> mug &amp; lid", "Blue mug", "Green mug", "x", "y"],
                             "description": [""] * 5})
    boxes = pd.DataFrame({"product_id": list("abde"), "crop_path": [f"/crop/{c}.jpg" for c in "abde"]})
    refined = pd.DataFrame({"product_id": list("abcde"), "query": ["red mug"] * 5})
    tables = {"vlclip": pair_table(products, Variant("vlclip", "crops", "refined"), boxes, refined),
              "baseline": pair_table(products, Variant("baseline", "full", "raw"))}
    gallery = shared_gallery(tables, products, "test")
    assert gallery["product_id"].tolist() == ["a", "b"]  # c has no crop: no variant ranks it
    # no queries.csv: each product's title (HTML stripped), never its refined query
    queries = eval_queries(tmp_path, gallery)
    assert queries["query"].tolist() == ["Red mug & lid", "Blue mug"] and queries["query_id"].tolist() == ["a", "b"]
    pd.DataFrame({"query_id": ["q1", "q1", "q2"], "query": ["mug", "mug", "lamp"],
                  "product_id": ["a", "c", "c"]}).to_csv(tmp_path / "queries.csv", index=False)
    queries = eval_queries(tmp_path, gallery)
    assert queries[["query_id", "product_id"]].values.tolist() == [["q1", "a"]]  # q2 has no relevant product


def test_raw_text_drops_markup():
    assert raw_text("Mug <i>XL</i>", "<p>Soft &amp; <b>red</b></p>") == "Mug XL . Soft & red"


def test_promotion_reads_validation_figures_only_and_needs_a_significant_gain(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from registry.promote import promote
    from registry.register import register
    from vlclip.encoder import ModelParams, create, save_checkpoint
    from vlclip.tracking import MlflowParams, setup

    monkeypatch.delenv("VLCLIP_MLFLOW_URI", raising=False)
    p = MlflowParams(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "art"))
    setup(p)

    def candidate(name, test, first_places):
        """40 validation queries, the first `first_places` of them answered first, the rest at rank 10."""
        model, *_ = create(ModelParams("vlclip-tiny"))
        ckpt = save_checkpoint(model, ModelParams("vlclip-tiny"), tmp_path / name)
        ranks = {f"q{i:02d}": 1 if i < first_places else 10 for i in range(40)}
        val = first_places / 40
        return register(ckpt, {"hits@5": test, "mrr": test, "val": {"hits@5": val, "mrr": val}}, p, "shop", ranks,
                        resamples=500)

    first = candidate("a", test=0.9, first_places=8)
    better_on_val = candidate("b", test=0.1, first_places=32)    # worse on test, far better on validation
    better_on_test = candidate("c", test=0.99, first_places=30)  # better on test, worse on validation
    barely = candidate("d", test=0.5, first_places=33)           # one more query than the champion
    assert first["promoted"] and better_on_val["promoted"]
    assert not better_on_test["promoted"] and not barely["promoted"]
    assert barely["champion"] == better_on_val["version"] and barely["champion_value"] == 0.8
    client = MlflowClient()
    tags = client.get_model_version("vl-clip", barely["version"]).tags
    assert tags["hits_at_5"] == "0.5" and tags["val_hits_at_5"] == "0.825"
    assert "not significant" in tags["vlclip.gate_reason"]
    ok, message = promote(client, "vl-clip", barely["version"], "hits@5")
    assert not ok and "not significant" in message
    assert "refused" in client.get_model_version("vl-clip", barely["version"]).tags["vlclip.promote"]
    ok, _ = promote(client, "vl-clip", barely["version"], "hits@5", force=True)
    assert ok and client.get_model_version_by_alias("vl-clip", "champion").version == int(barely["version"])


def test_similar_precision_stays_in_type_and_excludes_the_product_itself():
    from training.evaluate import partners, similar_precision

    q = pd.DataFrame({"query_id": ["q1", "q1", "q2", "q2"], "product_id": ["a", "b", "c", "zz"]})
    related = partners(q, ["a", "b", "c", "d"])
    assert related == [{1}, {0}, set(), set()]  # zz is not in the gallery: c has no partner
    fused = np.array([[1, 0], [0.9, 0.1], [0.95, 0.05], [0, 1]], dtype=float)
    fused /= np.linalg.norm(fused, axis=1, keepdims=True)
    same_type = similar_precision(fused, np.array(["mug"] * 4), related, k=1)
    assert same_type == {"precision@1": 0.0, "n_products": 2}  # c, unrelated, is nearest to both a and b
    split_types = similar_precision(fused, np.array(["mug", "mug", "hat", "hat"]), related, k=1)
    assert split_types["precision@1"] == 1.0  # within their type, a and b only have each other


def test_terminal_tables_hold_a_row_per_variant_and_per_type(tmp_path):
    from training.evaluate import file_name, headline, per_type, write_rows

    m = {"hits@5": 0.25, "mrr": 0.15, "ci95": {"hits@5": [0.2, 0.3]}, "val": {"hits@5": 0.22}}
    rows = headline({"vlclip": m, "baseline": {**m, "hits@5": 0.08}})
    assert rows["vlclip"] == {"hits@5": 0.25, "hits@5_lo": 0.2, "hits@5_hi": 0.3, "mrr": 0.15, "val_hits@5": 0.22}
    types = per_type({"vlclip": {"bag": {"hits@5": 0.5, "n_queries": 4}, "table lamp": {"hits@5": 0.1, "n_queries": 9}},
                      "baseline": {"bag": {"hits@5": 0.25, "n_queries": 4}}})
    assert types == {"bag": {"vlclip": 0.5, "baseline": 0.25, "queries": 4},
                     "table lamp": {"vlclip": 0.1, "queries": 9}}
    assert file_name("bag") == "bag" and file_name("table lamp").startswith("table_lamp-")
    assert file_name("Table Lamp") != file_name("table lamp")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "gone.json").write_text("{}")  # a type the catalog no longer has
    write_rows(tmp_path / "t", types)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["bag.json", f"{file_name('table lamp')}.json"]
