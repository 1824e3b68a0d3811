"""Stores outside DVC follow the pipeline: wiped stores are rebuilt, and a SIGKILL at a random point of
any side-effect stage leaves nothing that a plain `dvc repro` does not converge from."""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pandas as pd
import pytest
import yaml

from tests.integration.conftest import ROOT, run, serving
from vlclip.sandbox import project_env

STATE = ("receipts/register.json", "receipts/materialize.json", "receipts/index.json", "metrics/index.json",
         "metrics/retrieval.json", "metrics/quality.json")
# Seconds after "Running stage" within which the kill lands (each stage's tiny-catalog run time or more).
KILL_WINDOW = {"train@vlclip": 20.0, "register": 8.0, "materialize": 8.0, "index": 5.0}


def _registry(project) -> tuple[int, int]:
    """(model versions, runs left RUNNING) in the project's MLflow database."""
    with sqlite3.connect(project / "mlflow" / "mlflow.db") as db:
        versions = db.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
        running = db.execute("SELECT COUNT(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0]
    return versions, running


def _state(project) -> dict:
    return {p: (project / p).read_bytes() for p in STATE}


def _debris(project) -> list[str]:
    return sorted(p.name for p in (project / "data").glob(".*") if p.is_dir()) + \
        sorted(p.name for p in (project / "receipts").glob(".*"))


def _kill_during(project, stage: str, rng: random.Random) -> float:
    """`dvc repro -f -s stage`, SIGKILLed (its whole process group) a random time after the stage starts."""
    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", stage], cwd=project, env=project_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    started = threading.Event()

    def watch():
        for line in proc.stdout:
            if line.startswith("Running stage"):
                started.set()
    threading.Thread(target=watch, daemon=True).start()
    assert started.wait(timeout=300), f"{stage} never started"
    delay = rng.uniform(0.0, KILL_WINDOW[stage])
    time.sleep(delay)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the stage finished before the kill landed: a plain re-run
        pass
    proc.wait(timeout=60)
    return delay


def _repro(project):
    r = run(["dvc", "repro"], project, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r.stdout


@pytest.mark.parametrize("stage", list(KILL_WINDOW))
def test_sigkill_anywhere_in_a_side_effect_stage_then_repro_converges(project, stage):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    before, registry = _state(project), _registry(project)
    delay = _kill_during(project, stage, rng)
    _repro(project)
    where = f"{stage} killed {delay:.2f}s after it started (seed {seed})"
    assert _state(project) == before, where
    assert _registry(project) == registry and registry[1] == 0, where
    assert _debris(project) == [], where


def test_wiped_stores_are_rebuilt_and_the_service_starts(project):
    for store in ("mlflow", "feature_repo/data", "data/index"):
        shutil.rmtree(project / store)
    out = _repro(project)
    assert "Running stage 'register'" in out and "Running stage 'index'" in out
    assert (project / "feature_repo/data/online_store.db").exists()
    assert json.loads((project / "data/index/manifest.json").read_text())["counts"]
    receipt = json.loads((project / "receipts/register.json").read_text())
    with serving(project) as url:
        r = httpx.post(f"{url}/search", json={"query": "a red one", "k": 3}, timeout=60)
        assert r.status_code == 200, r.text
        assert str(r.json()["model_version"]) == receipt["champion"] and len(r.json()["results"]) == 3


def _products(project) -> set[tuple[str, str]]:
    """(product_id, title) of the products the pipeline kept (two demo catalogs share id patterns)."""
    return set(pd.read_parquet(project / "data/dedup/products.parquet", columns=["product_id", "title"])
               .itertuples(index=False, name=None))


def _search(project, query: str = "a red one") -> tuple[set[tuple[str, str]], str]:
    receipt = json.loads((project / "receipts/register.json").read_text())
    with serving(project) as url:
        r = httpx.post(f"{url}/search", json={"query": query, "k": 10}, timeout=60)
    assert r.status_code == 200, r.text
    assert str(r.json()["model_version"]) == receipt["champion"]
    return {(x["product_id"], x["title"]) for x in r.json()["results"]}, receipt["champion"]


def test_switching_to_another_catalog_and_back_serves_each_its_own(project, tmp_path_factory):
    """Run last in this module: it points the project at a third catalog and back."""
    third = tmp_path_factory.mktemp("third") / "shop"
    r = run([sys.executable, "-m", "demo_catalog.demo", "--params", str(ROOT / "params.yaml"), "--out", str(third),
             "--seed", "11", "--n-products", "90"], ROOT)
    assert r.returncode == 0, r.stderr
    params_file = project / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    home, home_products = params["catalog"]["path"], _products(project)
    params["catalog"]["path"] = str(third)
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        _repro(project)
        found, third_champion = _search(project)
        assert found and found <= _products(project) and not found & home_products
    finally:
        params_file.write_text(original)
    _repro(project)  # back home: DVC restores the stages from its cache; the stores follow
    assert json.loads((project / "receipts/register.json").read_text())["catalog"] == home
    found, home_champion = _search(project)
    assert found and found <= home_products and home_champion != third_champion
