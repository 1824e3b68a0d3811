"""A grounding backend on a finished run, against the catalog's ground-truth boxes: its boxes with no
fallback, and how the score relates to being right (IoU >= 0.5) per score bin: a calibrated score
is right about as often as it says.

    python benchmarks/detectors.py --truth data/demo/ground_truth/products.csv [--backend clip_windows]
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from curation.ground import main as ground
from validation.quality import box_iou
from vlclip.dag import stage_arg

BINS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 1.01)


def boxes_without_fallback(project: Path, backend: str) -> pd.DataFrame:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ground"].update(backend=backend, threshold=0.0)
    products, scout = (stage_arg(project, "ground", flag).resolve() for flag in ("--products", "--scout"))
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(project):  # image paths are project-relative
        (Path(tmp) / "params.yaml").write_text(yaml.safe_dump(params))
        ground(["--params", f"{tmp}/params.yaml", "--products", str(products), "--scout", str(scout),
                "--out", f"{tmp}/ground"])
        return pd.read_csv(f"{tmp}/ground/boxes.csv", dtype={"product_id": str})


def reliability(boxes: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    df = boxes.merge(truth.rename(columns={c: f"{c}_gt" for c in ("x0", "y0", "x1", "y1")}), on="product_id")
    df = df[df["x0_gt"].notna()]
    hit = box_iou(df[["bx0", "by0", "bx1", "by1"]].to_numpy(float),
                  df[["x0_gt", "y0_gt", "x1_gt", "y1_gt"]].to_numpy(float)) >= 0.5
    bins = pd.cut(df["score"], BINS, right=False)
    return pd.DataFrame({"score": df["score"], "hit": hit, "bin": bins}).groupby("bin", observed=True).agg(
        n=("hit", "size"), mean_score=("score", "mean"), hit_rate=("hit", "mean"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default=".", type=Path)
    ap.add_argument("--truth", required=True, type=lambda p: Path(p).resolve())
    ap.add_argument("--backend", default="salient")
    args = ap.parse_args()
    table = reliability(boxes_without_fallback(args.project, args.backend),
                        pd.read_csv(args.truth, dtype={"product_id": str}))
    n = table["n"].sum()
    print(table.round(3).to_string())
    print(f"IoU >= 0.5 with no fallback: {(table['n'] * table['hit_rate']).sum() / n:.3f} of {n}; "
          f"calibration error (mean |score - hit rate|, weighted): "
          f"{float(np.average((table['mean_score'] - table['hit_rate']).abs(), weights=table['n'])):.3f}")


if __name__ == "__main__":
    main()
