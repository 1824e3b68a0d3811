"""Score grounded boxes against a demo catalog's ground truth: IoU, coverage, fallback rate.

    python benchmarks/grounding.py --boxes data/ground/boxes.csv --truth data/demo/ground_truth/products.csv
"""
from __future__ import annotations

import argparse

import pandas as pd

from demo_catalog.score import score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--truth", required=True)
    args = ap.parse_args()
    truth = pd.read_csv(args.truth, dtype={"product_id": str})
    truth = truth.rename(columns={c: f"{c}_gt" for c in ("x0", "y0", "x1", "y1")})
    result = score(pd.read_csv(args.boxes, dtype={"product_id": str}), truth)
    for k, v in result.items():
        print(f"{k:<32} {v:.3f}" if isinstance(v, float) else f"{k:<32} {v}")


if __name__ == "__main__":
    main()
