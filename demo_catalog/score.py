"""Score grounded boxes against a catalog's ground-truth product boxes: IoU, coverage, fallback rate."""
from __future__ import annotations

import numpy as np
import pandas as pd


def score(boxes: pd.DataFrame, truth: pd.DataFrame) -> dict:
    df = boxes.merge(truth, on="product_id", suffixes=("", "_gt"))
    df = df[df["x0_gt"].notna()]
    p = df[["x0", "y0", "x1", "y1"]].to_numpy(float)
    g = df[["x0_gt", "y0_gt", "x1_gt", "y1_gt"]].to_numpy(float)
    iw = np.clip(np.minimum(p[:, 2], g[:, 2]) - np.maximum(p[:, 0], g[:, 0]), 0, None)
    ih = np.clip(np.minimum(p[:, 3], g[:, 3]) - np.maximum(p[:, 1], g[:, 1]), 0, None)
    inter = iw * ih
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    iou = inter / (area(p) + area(g) - inter)
    cover = inter / area(g)                       # share of the product inside the crop
    share = area(g) / area(p)                     # share of the crop the product fills
    grounded = ~df["fallback"].astype(bool).to_numpy()
    return {"n": int(len(df)), "fallback_rate": float(1 - grounded.mean()),
            "mean_iou": float(iou.mean()), "iou>=0.5": float((iou >= 0.5).mean()),
            "product_fully_in_crop(>=0.9)": float((cover >= 0.9).mean()),
            "mean_product_share_of_crop": float(share.mean()),
            "grounded_only_iou>=0.5": float((iou[grounded] >= 0.5).mean()) if grounded.any() else float("nan")}
