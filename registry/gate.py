"""The promotion gate: a challenger takes `champion` only when its validation gain over the champion is
significant, judged by a paired bootstrap over the validation queries both were ranked on.

Each registered version keeps its per-query validation ranks (the evaluate stage's ranks table) as
the artifact `val_ranks.json` of its run, so a later challenger, or `vlclip promote`, can be compared
with it query by query.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from training.bootstrap import paired_bootstrap

RANKS_ARTIFACT = "val_ranks.json"
REASON_TAG = "vlclip.gate_reason"


def val_ranks(table: pd.DataFrame, variant: str = "vlclip") -> dict[str, int]:
    """The evaluate stage's ranks table -> {query_id: first-hit rank} of one variant on validation."""
    part = table[(table["variant"] == variant) & (table["split"] == "val")]
    return {str(q): int(r) for q, r in zip(part["query_id"], part["rank"])}


def load_ranks(client, name: str, version: str) -> dict[str, int] | None:
    """A version's validation ranks, or None when it was registered without them."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    run_id = client.get_model_version(name, version).run_id
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = download_artifacts(run_id=run_id, artifact_path=RANKS_ARTIFACT, dst_path=tmp)
            return {str(k): int(v) for k, v in json.loads(Path(path).read_text()).items()}
    except (MlflowException, OSError, ValueError):
        return None


def _ks(metric: str) -> tuple[int, ...]:
    return (int(metric.split("@")[1]),) if metric.startswith("hits@") else ()


def decide(metric: str, candidate: dict[str, int], champion: dict[str, int] | None, candidate_value: float,
           champion_value: float | None, resamples: int = 1000, seed: int = 0) -> tuple[bool, str]:
    """-> (promote?, why). With no champion figure the challenger wins; with no per-query ranks for the
    champion (registered before they were kept) a strictly higher value wins; otherwise the gain on the
    shared validation queries must be significant at 95%."""
    if champion_value is None:
        return True, "no champion to beat on this catalog"
    if champion is None:
        better = candidate_value > champion_value
        return better, (f"validation {metric} {candidate_value:.4f} vs {champion_value:.4f} (champion has no "
                        "per-query ranks: strict comparison)")
    shared = sorted(set(candidate) & set(champion))
    if not shared:
        return False, "no validation query in common with the champion: not comparable"
    ranks = {"champion": np.array([champion[q] for q in shared]),
             "challenger": np.array([candidate[q] for q in shared])}
    diff = paired_bootstrap(ranks, _ks(metric), "champion", resamples, seed=seed)["challenger"]["vs_champion"][metric]
    lo, hi = diff["ci95"]
    why = (f"validation {metric} gain {diff['diff']:+.4f} on {len(shared)} shared queries, "
           f"95% CI [{lo:+.4f}, {hi:+.4f}]")
    return lo > 0, why + (": significant" if lo > 0 else ": not significant")
