"""The whole pipeline on a tiny catalog outside the project, then every artifact is opened for real."""
import json
import sys

import httpx
import pandas as pd
import pytest

from curation.ingest import read_catalog
from demo_catalog import hostile
from tests.integration.conftest import ROOT, run, serving
from tests.unit.project_imports import reached, stage_module, stages

VARIANTS = {"vlclip", "no_grounding", "no_refinement", "baseline"}
CHECKED = {"register", "materialize", "index"}  # stages that verify their store on every run
RECEIPTS = ("receipts/register.json", "receipts/materialize.json", "receipts/index.json", "metrics/index.json")
# The first /similar loads Feast lazily; on a loaded 2-core machine that took longer than httpx's 5 s.
TIMEOUT = httpx.Timeout(60.0)


def _changed(project) -> dict:
    r = run(["dvc", "status", "--json"], project)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_second_repro_only_verifies_the_stores_and_changes_nothing(project):
    status = _changed(project)
    assert set(status) == CHECKED and all(v == ["always changed"] for v in status.values()), status
    before = {p: (project / p).read_bytes() for p in ("dvc.lock", *RECEIPTS)}
    r = run(["dvc", "repro"], project, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("nothing to do") == 2 and "champion" in r.stdout, r.stdout[-3000:]
    assert {p: (project / p).read_bytes() for p in before} == before


def _stages_reaching(relpath: str) -> set[str]:
    """Stages (train once per variant) whose module reaches the file, by the source import graph."""
    return {address for address, _, stage in stages() if ROOT / relpath in reached(stage_module(stage["cmd"]))}


@pytest.mark.parametrize("module, some_stages", [
    ("vlclip/params.py", {"demo", "ingest", "train@vlclip", "index"}),   # the shared base: every stage
    ("vlclip/encoder.py", {"ground", "train@baseline", "evaluate", "register", "embed"}),
    ("curation/refinement/guards.py", {"refine", "validate"}),
    ("training/plots.py", {"train@no_grounding", "evaluate"}),
])
def test_editing_a_module_makes_dvc_rerun_every_stage_that_imports_it(project, module, some_stages):
    expected = _stages_reaching(module)
    assert some_stages <= expected
    path = project / module
    original = path.read_bytes()
    path.write_bytes(original + b"\n# an edit\n")
    try:
        r = run(["dvc", "status", "--json"], project)
    finally:
        path.write_bytes(original)
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)) == expected | CHECKED
    assert set(_changed(project)) == CHECKED


def test_pipeline_read_the_pointed_catalog(project, other_catalog):
    products = pd.read_parquet(project / "data/catalog/products.parquet")
    source = read_catalog(other_catalog / "catalog.csv")  # holds malformed lines: the project's own reader
    assert set(products["product_id"]) <= set(source["product_id"])
    assert all(p.startswith(str(other_catalog)) for p in products["image_path"])
    quarantine = pd.read_csv(project / "data/catalog/quarantine.csv")
    assert len(quarantine) >= 1 and quarantine["reason"].str.len().min() > 5


def test_hostile_rows_are_quarantined_with_their_reason_and_no_valid_row_is_lost(project, other_catalog):
    quarantine = pd.read_csv(project / "data/catalog/quarantine.csv", keep_default_na=False)
    kept_ids = set(pd.read_parquet(project / "data/catalog/products.parquet")["product_id"])
    s = hostile.score(other_catalog, kept_ids, quarantine)
    assert len(s["valid"]) >= 200 and s["lost"] == [] and s["let_in"] == []
    assert s["hostile_bad"] >= 18 and s["quarantined"] == s["bad"] and s["wrong_reason"] == []
    kept = s["hostile_kept"]
    # odd encodings, hostile text, a one-product type and look-alike types go all the way into the index
    assert kept <= set(pd.read_parquet(project / "data/embeddings/products.parquet")["product_id"])
    counts = json.loads((project / "receipts/index.json").read_text())["counts"]
    assert counts["ukulele"] == 1 and counts["t-shirt"] == 1 and counts["t shirt"] == 1


def test_no_stage_process_of_the_run_peaked_above_2_gib(repro_peak_gib):
    assert 0 < repro_peak_gib < 2.0


def test_empty_and_mixed_descriptions_keep_their_visual_words(project, other_catalog):
    """About 5% of the catalog has an empty description and 5% mixes selling and visual words in every
    sentence: the run went through (fixture) and their queries keep what their text states."""
    truth = pd.read_csv(other_catalog / "ground_truth/products.csv", dtype=str, keep_default_na=False)
    kinds = truth.loc[truth["broken"] == "", "description_kind"].value_counts(normalize=True)
    assert 0.02 <= kinds["empty"] <= 0.1 and 0.02 <= kinds["mixed"] <= 0.1, kinds
    quality = json.loads((project / "metrics/quality.json").read_text())
    assert quality["ground_truth"] is True and quality["refinement"]["hallucinated_words"] <= 0.02
    kept = quality["refinement"]["attributes_kept_by_kind"]
    assert kept["empty"] >= 0.8 and kept["mixed"] >= 0.8, kept
    queries = pd.read_parquet(project / "data/refine/queries.parquet").merge(truth, on="product_id")
    hard = queries[queries["description_kind"].isin(["empty", "mixed"])]
    for r in hard.itertuples():
        stated = [getattr(r, f"{a}_text") for a in ("colour", "accent", "pattern", "variant")]
        stated = [w for phrase in stated for w in phrase.split() if phrase]
        assert not stated or set(stated) & set(r.query.replace(",", " ").split()), (r.product_id, r.query)


def test_metrics_contract(project):
    metrics = json.loads((project / "metrics/retrieval.json").read_text())
    assert set(metrics) == VARIANTS
    for name, m in metrics.items():
        extra = {"ci95", "val", "similar"} | ({"vs_vlclip"} if name != "vlclip" else set())
        assert set(m) == {"hits@1", "hits@5", "hits@10", "mrr", "n_queries"} | extra
        assert 0 <= m["hits@1"] <= m["hits@5"] <= m["hits@10"] <= 1 and m["n_queries"] > 0
        lo, hi = m["ci95"]["hits@5"]
        assert lo <= m["hits@5"] <= hi and m["val"]["n_queries"] > 0
    assert len({m["n_queries"] for m in metrics.values()}) == 1  # same queries for every variant
    assert len({m["val"]["n_queries"] for m in metrics.values()}) == 1
    for picture in ("hits_at_k.png", "retrieval_examples.png", "grounding.png"):
        assert (project / "plots" / picture).stat().st_size > 1000


def test_dvc_metrics_and_plots_read_in_a_terminal_and_a_browser(project, tmp_path):
    """`dvc metrics show` is a row per variant that fits a terminal; the full figures print on demand;
    `dvc plots show` renders the hits@k plot with the template the project ships."""
    shown = run(["dvc", "metrics", "show"], project)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.strip().splitlines()
    assert lines[0].split() == ["Path", "hits@5", "hits@5_hi", "hits@5_lo", "mrr", "val_hits@5"], lines[0]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(f"metrics/summary/{v}.json" for v in VARIANTS)
    assert max(map(len, lines)) <= 100, shown.stdout
    metrics = json.loads((project / "metrics/retrieval.json").read_text())
    for line in lines[1:]:
        variant = line.split()[0].removeprefix("metrics/summary/").removesuffix(".json")
        assert float(line.split()[1]) == round(metrics[variant]["hits@5"], 4)
    by_type = run(["dvc", "metrics", "show", "metrics/by_type"], project)
    assert by_type.returncode == 0 and len(by_type.stdout.strip().splitlines()) == 1 + len(list(
        (project / "metrics/by_type").glob("*.json"))) > 2, by_type.stdout + by_type.stderr
    plots = run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], project)
    assert plots.returncode == 0, plots.stdout + plots.stderr
    assert "hits_at_k.csv" in (tmp_path / "plots" / "index.html").read_text()


def test_champion_loads_and_embeds(project):
    receipt = json.loads((project / "receipts/register.json").read_text())
    assert receipt["promoted"] and receipt["champion"] == receipt["version"]
    code = ("import sys; sys.path.insert(0, '.'); from registry import load_champion; "
            "e, v = load_champion(sys.argv[1]); print(v, e.encode_text(['red mug']).shape)")
    r = run([sys.executable, "-c", code, receipt["tracking_uri"]], project)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == receipt["version"]


def test_feast_online_store_returns_embeddings(project):
    from feast import FeatureStore

    emb = pd.read_parquet(project / "data/embeddings/products.parquet")
    store = FeatureStore(repo_path=str(project / "feature_repo"))
    pid = emb["product_id"].iloc[3]
    row = store.get_online_features(features=["product_embeddings:fused_embedding",
                                              "product_attributes:product_type"],
                                    entity_rows=[{"product_id": pid}]).to_dict()
    assert row["product_type"][0] == emb["product_type"].iloc[3]
    assert row["fused_embedding"][0] == pytest.approx(list(emb["fused_embedding"].iloc[3]), abs=1e-5)


@pytest.fixture(scope="module")
def service(project):
    with serving(project) as url:
        yield url


def test_service_search_returns_products_of_the_requested_type(service, project):
    emb = pd.read_parquet(project / "data/embeddings/products.parquet")
    ptype = emb["product_type"].value_counts().index[0]
    r = httpx.post(f"{service}/search", json={"query": f"red {ptype}", "product_type": ptype, "k": 5},
                   timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"] and {x["product_type"] for x in body["results"]} == {ptype}
    receipt = json.loads((project / "receipts/register.json").read_text())
    assert str(body["model_version"]) == receipt["champion"]


def test_service_similar_reads_feast_and_stays_in_type(service, project):
    emb = pd.read_parquet(project / "data/embeddings/products.parquet")
    pid, ptype = emb["product_id"].iloc[0], emb["product_type"].iloc[0]
    r = httpx.get(f"{service}/products/{pid}/similar", params={"k": 3}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results and pid not in {x["product_id"] for x in results}
    assert {x["product_type"] for x in results} == {ptype}
    assert httpx.get(f"{service}/", timeout=TIMEOUT).status_code == 200


def test_a_second_server_on_the_same_index_exits_with_the_reason(service, project):
    """An Edge shard admits one open handle: the second `vlclip serve` must say so and exit 1, before
    loading a model and without a stack trace."""
    r = run([sys.executable, "-m", "vlclip.cli", "serve", "--port", "0"], project)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-2000:]
    assert "is another process serving it" in out and "Traceback" not in out
    metrics = httpx.get(f"{service}/metrics", timeout=TIMEOUT).text  # the first one is unharmed
    assert 'vlclip_ready 1.0' in metrics and "vlclip_model_info{model_version=" in metrics
