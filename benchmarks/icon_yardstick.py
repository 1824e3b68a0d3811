"""Run the whole pipeline on the icon yardstick with only `catalog.path` changed, and print how far it
got and the refinement, grounding and retrieval figures against the yardstick's ground truth.

    python benchmarks/icon_yardstick.py --work /tmp/yardstick   # builds the catalog from /usr/share/icons

Needs the icon themes (apt-get install papirus-icon-theme breeze-icon-theme oxygen-icon-theme
adwaita-icon-theme numix-icon-theme tango-icon-theme elementary-xfce-icon-theme moka-icon-theme
suru-icon-theme librsvg2-bin). The project is copied to <work>/project; nothing here is touched.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd

from demo_catalog.score import score as grounding_scores
from vlclip.sandbox import copy_project, project_env
from yardstick.icons import build
from yardstick.score import refinement_scores

ROOT = Path(__file__).resolve().parents[1]


def make_project(dest: Path, catalog: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    return copy_project(ROOT, dest, {"catalog": {"path": str(catalog)}})


def repro(project: Path) -> int:
    with open(project / "repro.log", "w") as log:
        return subprocess.run(["dvc", "repro"], cwd=project, env=project_env(), stdout=log,
                              stderr=subprocess.STDOUT).returncode


def report(project: Path, catalog: Path) -> dict:
    truth = pd.read_csv(catalog / "ground_truth" / "products.csv", dtype={"product_id": str})
    out: dict = {}
    if (project / "data/refine/queries.parquet").exists():
        out["refinement"] = refinement_scores(pd.read_parquet(project / "data/refine/queries.parquet"), truth)
    if (project / "data/ground/boxes.csv").exists():
        gt = truth.rename(columns={c: f"{c}_gt" for c in ("x0", "y0", "x1", "y1")})
        boxes = pd.read_csv(project / "data/ground/boxes.csv", dtype={"product_id": str})
        out["grounding"] = grounding_scores(boxes, gt)
    if (project / "reports/validation/report.json").exists():
        out["validation_failures"] = json.loads((project / "reports/validation/report.json").read_text())[
            "critical_failures"]
    if (project / "metrics/retrieval.json").exists():
        out["retrieval"] = json.loads((project / "metrics/retrieval.json").read_text())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--icons", default="/usr/share/icons")
    args = ap.parse_args()
    catalog = args.work / "catalog"
    if not (catalog / "catalog.csv").exists():
        print(build(Path(args.icons), catalog, log=lambda *_: None))
    project = make_project(args.work / "project", catalog)
    code = repro(project)
    print(f"dvc repro exit {code} (log: {project / 'repro.log'})")
    print(json.dumps(report(project, catalog), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
