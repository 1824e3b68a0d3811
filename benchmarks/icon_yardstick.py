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

from vlclip.sandbox import copy_project, project_env
from yardstick.icons import build

ROOT = Path(__file__).resolve().parents[1]


def make_project(dest: Path, catalog: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    return copy_project(ROOT, dest, {"catalog": {"path": str(catalog)}})


def repro(project: Path, *targets: str) -> int:
    with open(project / "repro.log", "a") as log:
        return subprocess.run(["dvc", "repro", *targets], cwd=project, env=project_env(), stdout=log,
                              stderr=subprocess.STDOUT).returncode


def report(project: Path) -> dict:
    """The quality stage's figures (refinement and grounding against the yardstick's truth), the
    validation failures if any, and the retrieval metrics if the run got that far."""
    out: dict = {}
    for key, path in (("quality", "metrics/quality.json"), ("retrieval", "metrics/retrieval.json")):
        if (project / path).exists():
            out[key] = json.loads((project / path).read_text())
    if (project / "reports/validation/report.json").exists():
        out["validation_failures"] = json.loads((project / "reports/validation/report.json").read_text())[
            "critical_failures"]
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
    if code != 0 and not (project / "metrics/quality.json").exists():
        repro(project, "quality")  # the figures that explain a failed gate
    print(json.dumps(report(project), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
