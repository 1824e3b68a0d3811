"""Vectors no store may hold: wrong dimension, NaN or infinite entries, zero norm. The index and
materialize stages refuse a table holding any of them, naming the products."""
from __future__ import annotations

import numpy as np
import pandas as pd

EMBEDDINGS = ("image_embedding", "text_embedding", "fused_embedding")


def bad_vectors(df: pd.DataFrame, dim: int | None = None) -> dict[str, list[str]]:
    """"<column>: <problem>" -> product ids, for vectors no store may hold: wrong dimension (vs `dim`,
    else the most common length), NaN or infinite entries, zero norm."""
    out: dict[str, list[str]] = {}
    ids = df["product_id"].astype(str).to_numpy()
    for col in (c for c in EMBEDDINGS if c in df.columns):
        lengths = np.array([len(v) for v in df[col]])
        want = dim if dim is not None else int(np.bincount(lengths).argmax()) if len(lengths) else 0
        wrong = lengths != want
        if wrong.any():
            out[f"{col}: not {want}-dimensional"] = ids[wrong].tolist()
        good = ~wrong
        if not good.any():
            continue
        m = np.asarray(np.stack(df[col].to_numpy()[good]), dtype=np.float64)
        finite = np.isfinite(m).all(axis=1)
        for problem, mask in (("NaN or infinite", ~finite), ("zero norm", finite & (np.abs(m).sum(axis=1) == 0))):
            if mask.any():
                out[f"{col}: {problem}"] = ids[good][mask].tolist()
    return out


def check_vectors(df: pd.DataFrame, dim: int | None = None) -> None:
    """Refuse a table with any vector `bad_vectors` finds, naming the products (first 5 per problem)."""
    bad = bad_vectors(df, dim)
    if bad:
        raise ValueError("refusing vectors no store may hold: " + "; ".join(
            f"{problem} for {len(ids)} product(s) {ids[:5]}" for problem, ids in bad.items()))
