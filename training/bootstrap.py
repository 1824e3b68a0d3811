"""Paired bootstrap over queries: a 95% interval for each retrieval metric of each variant, and for each
variant's difference to a reference variant (every variant ranks the same queries, so the resampled
queries are shared and the intervals of the differences are paired).

The metrics are means over queries of a per-query value computed from the rank of the first relevant
product: HITS@k is (rank <= k), MRR is 1 / rank.
"""
from __future__ import annotations

import numpy as np


def per_query(ranks: np.ndarray, ks) -> dict[str, np.ndarray]:
    """ranks (Q,) 1-based first-hit ranks -> metric name -> (Q,) per-query values."""
    r = np.asarray(ranks, dtype=np.float64)
    return {**{f"hits@{k}": (r <= k).astype(np.float64) for k in ks}, "mrr": 1.0 / r}


def resample_means(values: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """values (Q,), picks (B, Q) query indices -> (B,) means of the resampled queries."""
    return values[picks].mean(axis=1)


def interval(samples: np.ndarray, level: float) -> list[float]:
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return [float(lo), float(hi)]


def paired_bootstrap(ranks: dict[str, np.ndarray], ks, reference: str, resamples: int = 1000,
                     level: float = 0.95, seed: int = 0, chunk: int = 200) -> dict[str, dict]:
    """ranks: variant -> (Q,) first-hit ranks on the same queries, in the same order.
    -> variant -> {"ci95": {metric: [lo, hi]}, and for every variant but the reference
    "vs_<reference>": {metric: {"diff", "ci95", "significant"}}}; a difference is significant when its
    interval excludes 0. Resamples are drawn in chunks so memory stays at chunk x Q."""
    sizes = {len(r) for r in ranks.values()}
    if len(sizes) != 1:
        raise ValueError(f"paired bootstrap needs the same queries for every variant; got sizes {sizes}")
    n = sizes.pop()
    values = {v: per_query(r, ks) for v, r in ranks.items()}
    rng = np.random.default_rng(seed)
    samples = {v: {m: [] for m in values[v]} for v in values}
    for start in range(0, resamples, chunk):
        picks = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        for v in values:
            for m, x in values[v].items():
                samples[v][m].append(resample_means(x, picks))
    samples = {v: {m: np.concatenate(s) for m, s in ms.items()} for v, ms in samples.items()}
    out = {}
    for v, ms in samples.items():
        out[v] = {"ci95": {m: interval(s, level) for m, s in ms.items()}}
        if v != reference:
            diffs = {}
            for m, s in ms.items():
                lo, hi = interval(s - samples[reference][m], level)
                diffs[m] = {"diff": float(values[v][m].mean() - values[reference][m].mean()), "ci95": [lo, hi],
                            "significant": bool(lo > 0 or hi < 0)}
            out[v][f"vs_{reference}"] = diffs
    return out
