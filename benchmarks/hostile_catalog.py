"""The whole pipeline, with default params, on a catalog with hostile rows among valid ones.

Builds a demo catalog (another seed) plus every hostile case of demo_catalog.hostile, runs `dvc repro`
on a scratch copy of the project with only `catalog.path` changed and the quarantine-rate gate
raised (a user who knows the catalog is dirty does exactly that), then prints whether every valid
row was kept and every bad row quarantined with its reason, and the peak memory of a stage process.

    .venv/bin/python benchmarks/hostile_catalog.py --work /tmp/hostile [--n-products 210]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from curation.ingest import read_catalog
from demo_catalog import hostile
from vlclip.sandbox import copy_project, project_env

ROOT = Path(__file__).resolve().parents[1]


def build(work: Path, n_products: int) -> Path:
    catalog = work / "catalog"
    for cmd in (["demo_catalog.demo", "--params", str(ROOT / "params.yaml"), "--out", str(catalog), "--seed", "7",
                 "--n-products", str(n_products)], ["demo_catalog.hostile", "--catalog", str(catalog)]):
        subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, env=project_env(), check=True)
    return catalog


def score(project: Path, catalog: Path) -> dict:
    kept = set(pd.read_parquet(project / "data/catalog/products.parquet")["product_id"])
    quarantine = pd.read_csv(project / "data/catalog/quarantine.csv", keep_default_na=False)
    return {"rows": len(read_catalog(catalog / "catalog.csv")), **hostile.score(catalog, kept, quarantine)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--n-products", type=int, default=210)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    catalog = build(args.work, args.n_products)
    project = copy_project(ROOT, args.work / "project", {"catalog": {"path": str(catalog)},
                                                         "validate": {"max_quarantine_rate": 0.2}})
    r = subprocess.run([sys.executable, "-m", "vlclip.run"], cwd=project, env=project_env(), text=True,
                       capture_output=True)
    peak = re.search(r"peak memory of a stage process: ([\d.]+) GiB", r.stdout)
    print(f"dvc repro exit {r.returncode}; peak memory of a stage process "
          f"{peak.group(1) if peak else '?'} GiB")
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:])
        return 1
    s = score(project, catalog)
    print(f"{s['rows']} rows: {len(s['valid'])} valid, {len(s['lost'])} of them lost {s['lost'][:5]}; "
          f"{s['bad']} bad, {s['quarantined']} quarantined, {len(s['wrong_reason'])} with a wrong reason "
          f"{s['wrong_reason'][:3]}")
    return 0 if not s["lost"] and not s["let_in"] and not s["wrong_reason"] and s["bad"] == s["quarantined"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
