"""materialize: apply the Feast repository and load product embeddings into the online store.

Runs on every `dvc repro` (see vlclip.receipt): when the receipt names these embeddings and a spread
sample of products reads back from the online store, nothing is redone."""
from __future__ import annotations

import argparse
import importlib.util
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from serving.features import FeastParams
from vlclip import receipt
from vlclip.params import load_params, section


def load_definitions(repo: Path) -> list:
    """The Feast objects declared in the repository's .py files."""
    from feast import Entity, FeatureService, FeatureView, FileSource

    objects = []
    for path in sorted(repo.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"_feature_repo_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        objects += [v for v in vars(module).values()
                    if isinstance(v, (Entity, FeatureView, FeatureService, FileSource))]
    return objects


def materialize(repo: Path, config: str, embeddings: pd.DataFrame, sample: int) -> dict:
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / config)
    store.apply(load_definitions(repo))
    ts = pd.to_datetime(embeddings["event_timestamp"], utc=True)
    start, end = ts.min() - timedelta(seconds=1), ts.max() + timedelta(seconds=1)
    store.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime())
    wrong = missing_rows(store, embeddings, sample)  # the receipt proves the online store answers
    if wrong:
        raise RuntimeError(f"the online store does not return what was materialized for {wrong[:5]}")
    return {"config": config, "online_store": store.config.online_store.type,
            "registry": str(store.config.registry.path), "rows": int(len(embeddings)),
            "feature_views": sorted(fv.name for fv in store.list_feature_views()),
            "model_version": str(embeddings["model_version"].iloc[0]),
            "dim": len(embeddings["fused_embedding"].iloc[0])}


def spread(n: int, sample: int) -> list[int]:
    """Up to `sample` row numbers spread evenly over n rows, first and last included."""
    return sorted({round(i * (n - 1) / max(sample - 1, 1)) for i in range(min(n, sample))})


def missing_rows(store, embeddings: pd.DataFrame, sample: int) -> list[str]:
    """Product ids, of a spread sample, whose online fused embedding is absent or not the one given."""
    rows = embeddings.iloc[spread(len(embeddings), sample)]
    ids = rows["product_id"].astype(str).tolist()
    try:
        got = store.get_online_features(features=["product_embeddings:fused_embedding"],
                                        entity_rows=[{"product_id": i} for i in ids]).to_dict()["fused_embedding"]
    except Exception as exc:  # no registry, no table: nothing is there
        print(f"materialize: online store unreadable ({type(exc).__name__}: {exc})")
        return ids
    return [i for i, want, have in zip(ids, rows["fused_embedding"], got)
            if have is None or len(have) != len(want) or not np.allclose(have, want, atol=1e-6)]


def verified(repo: Path, config: str, embeddings: pd.DataFrame, old: dict | None, fingerprint: str,
             sample: int) -> bool:
    """Whether the online store still holds what the receipt says was materialized from these embeddings."""
    from feast import FeatureStore

    if not old or old.get("embeddings_sha256") != fingerprint or old.get("config") != config:
        return False
    wrong = missing_rows(FeatureStore(repo_path=str(repo), fs_yaml_file=repo / config), embeddings, sample)
    if wrong:
        print(f"materialize: {len(wrong)} of the sampled products are missing from the online store")
    return not wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--repo", required=True, help="the Feast repository (feature_repo)")
    ap.add_argument("--embeddings", required=True)
    ap.add_argument("--receipt", required=True)
    args = ap.parse_args(argv)
    p = section(FeastParams, load_params(args.params), "feast")
    repo, embeddings = Path(args.repo).resolve(), pd.read_parquet(args.embeddings)
    fingerprint = receipt.sha256_file(args.embeddings)
    if verified(repo, p.config, embeddings, receipt.read(args.receipt), fingerprint, p.verify_sample):
        print(f"materialize: the online store holds these {len(embeddings)} products (checked "
              f"{min(len(embeddings), p.verify_sample)}); nothing to do")
        return 0
    receipt.clear(args.receipt)
    t0 = time.time()
    made = {**materialize(repo, p.config, embeddings, p.verify_sample), "embeddings_sha256": fingerprint}
    receipt.write(args.receipt, made)
    print(f"materialize: {made['rows']} products into the {made['online_store']} online store "
          f"({', '.join(made['feature_views'])}) in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
