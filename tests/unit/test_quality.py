"""quality stage: refinement and grounding figures against a catalog's ground truth, as DVC metrics."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from demo_catalog.demo import DemoParams, catalog_rows, plan, truth_rows
from demo_catalog.lexicon import tokens
from validation.quality import box_iou, flat, grounding_quality, main, refinement_quality

TEXT_PARAMS = DemoParams(seed=11, n_products=400, image_size=64, duplicate_rate=0.03, n_broken=30)
ATTRS = ("colour", "accent", "pattern", "variant")


@pytest.fixture(scope="module")
def texts():
    rows = plan(TEXT_PARAMS)
    catalog = pd.DataFrame(catalog_rows(rows, TEXT_PARAMS))
    return catalog, pd.DataFrame(truth_rows(rows)).drop(columns=["x0", "y0", "x1", "y1"])


def _queries(truth: pd.DataFrame, attrs, extra: str = "") -> pd.DataFrame:
    ok = truth[truth["broken"] == ""]
    text = [" ".join([r[f"{a}_text"] for a in attrs if r[f"{a}_text"]] + [r["product_type"], extra]).strip()
            for r in ok.to_dict("records")]
    return pd.DataFrame({"product_id": ok["product_id"].tolist(), "query": text, "guard_ok": True})


def test_refinement_quality_rewards_kept_phrases_and_punishes_invented_words(texts):
    catalog, truth = texts
    full = refinement_quality(_queries(truth, ATTRS), catalog, truth)
    assert full["attributes_kept"] == 1.0 and full["hallucinated_words"] == 0.0
    assert full["attributes_kept_by_kind"] == {"empty": 1.0, "mixed": 1.0, "normal": 1.0, "thin": 1.0}
    assert full["guard_pass_rate"] == 1.0 and full["non_visual_rate"] == 0.0
    ok = truth[truth["broken"] == ""]
    stated = sum((ok[f"{a}_text"] != "").sum() for a in ATTRS)
    no_colour = refinement_quality(_queries(truth, ATTRS[1:]), catalog, truth)
    assert no_colour["attributes_kept"] == pytest.approx(1 - (ok["colour_text"] != "").sum() / stated, abs=1e-4)
    assert no_colour["attributes_kept_by_attribute"]["colour"] == 0.0
    said = sum(len(tokens(q)) for q in _queries(truth, ATTRS)["query"])
    invented = refinement_quality(_queries(truth, ATTRS, "velvet, with sparkly"), catalog, truth)
    assert invented["attributes_kept"] == 1.0
    assert invented["hallucinated_words"] == pytest.approx(2 * len(ok) / (said + 2 * len(ok)), abs=1e-4)


def test_refinement_quality_counts_guards_non_visual_terms_and_length(texts):
    catalog, _ = texts
    pid = catalog["product_id"].iloc[0]
    q = pd.DataFrame({"product_id": pid, "query": ["red " * 5, "red " * 10 + "free shipping", "x " * 20, "y " * 21],
                      "guard_ok": [True, False, "True", "false"]})
    s = refinement_quality(q, catalog, None)
    assert (s["guard_pass_rate"], s["non_visual_rate"], s["mean_words"], s["in_window"]) == (0.5, 0.25, 14.5, 0.5)
    assert refinement_quality(q, catalog, None, window=(5, 12))["in_window"] == 0.5
    assert "attributes_kept" not in s  # no truth, no attribute figures


def test_grounding_quality_scores_the_kept_box_per_type():
    boxes = pd.DataFrame({"product_id": ["a", "b", "c"], "fallback": [False, False, True],
                          "x0": [0, 0, 0], "y0": [0, 0, 0], "x1": [60, 100, 100], "y1": [60, 100, 100],
                          "bx0": [10, 50, 0], "by0": [10, 50, 0], "bx1": [50, 100, 100], "by1": [50, 100, 100]})
    types = pd.DataFrame({"product_id": ["a", "b", "c"], "product_type": ["lamp", "lamp", "mug"]})
    truth = pd.DataFrame({"product_id": ["a", "b", "c"], "x0": [10, 0, 0], "y0": [10, 0, 0],
                          "x1": [50, 40, 100], "y1": [50, 40, 100]})
    g = grounding_quality(boxes, types, truth)
    assert g["fallback_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert g["fallback_rate_by_type"] == {"lamp": 0.0, "mug": 1.0}
    assert g["iou>=0.5"] == pytest.approx(2 / 3, abs=1e-4) and g["iou>=0.5_by_type"] == {"lamp": 0.5, "mug": 1.0}
    assert g["product_fully_in_crop"] == 1.0
    assert "mean_iou" not in grounding_quality(boxes, types, None)
    assert box_iou(np.array([[0, 0, 2, 2.0]]), np.array([[1, 1, 3, 3.0]]))[0] == pytest.approx(1 / 7)


def test_flat_gives_mlflow_safe_keys():
    keys = flat({"grounding": {"iou>=0.5_by_type": {"tops & tees": 0.5}, "n": 3, "x": None}, "ground_truth": True})
    assert keys == {"grounding.iou_ge_0.5_by_type.tops___tees": 0.5, "grounding.n": 3.0}


def test_main_writes_metrics_and_logs_them_to_mlflow(texts, tmp_path):
    catalog, truth = texts
    (tmp_path / "cat" / "ground_truth").mkdir(parents=True)
    truth.to_csv(tmp_path / "cat" / "ground_truth" / "products.csv", index=False)
    catalog.to_parquet(tmp_path / "products.parquet")
    _queries(truth, ATTRS[:2]).to_parquet(tmp_path / "queries.parquet")
    ids = catalog["product_id"]
    pd.DataFrame({"product_id": ids, "fallback": True, "x0": 0, "y0": 0, "x1": 64, "y1": 64,
                  "bx0": 0, "by0": 0, "bx1": 64, "by1": 64}).to_csv(tmp_path / "boxes.csv", index=False)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    (tmp_path / "params.yaml").write_text(
        f"mlflow: {{tracking_uri: '{uri}', artifact_root: '{tmp_path}/art', experiment: q}}\n"
        "refine: {min_words: 10, max_words: 20}\n")
    assert main(["--params", str(tmp_path / "params.yaml"), "--catalog", str(tmp_path / "cat"), "--products",
                 str(tmp_path / "products.parquet"), "--queries", str(tmp_path / "queries.parquet"),
                 "--boxes", str(tmp_path / "boxes.csv"), "--metrics", str(tmp_path / "m" / "quality.json")]) == 0
    m = json.loads((tmp_path / "m" / "quality.json").read_text())
    assert m["ground_truth"] is True and m["grounding"]["fallback_rate"] == 1.0
    assert 0 < m["refinement"]["attributes_kept"] < 1
    import mlflow

    runs = mlflow.MlflowClient(uri).search_runs([mlflow.MlflowClient(uri).get_experiment_by_name("q").experiment_id])
    assert runs[0].data.metrics["grounding.fallback_rate"] == 1.0 and runs[0].data.tags["ground_truth"] == "true"
