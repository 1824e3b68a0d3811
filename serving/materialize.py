"""materialize: apply the Feast repository and load product embeddings into the online store."""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd

from serving.features import FeastParams
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


def materialize(repo: Path, config: str, embeddings: pd.DataFrame) -> dict:
    from feast import FeatureStore

    t0 = time.time()
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / config)
    store.apply(load_definitions(repo))
    ts = pd.to_datetime(embeddings["event_timestamp"], utc=True)
    start, end = ts.min() - timedelta(seconds=1), ts.max() + timedelta(seconds=1)
    store.materialize(start_date=start.to_pydatetime(), end_date=end.to_pydatetime())
    # read one product back: the receipt proves the online store answers
    pid = str(embeddings["product_id"].iloc[0])
    row = store.get_online_features(features=["product_embeddings:fused_embedding"],
                                    entity_rows=[{"product_id": pid}]).to_dict()
    dim = len(row["fused_embedding"][0] or [])
    if dim != len(embeddings["fused_embedding"].iloc[0]):
        raise RuntimeError(f"online store returned a {dim}-d embedding for {pid}")
    return {"config": config, "online_store": store.config.online_store.type,
            "registry": str(store.config.registry.path), "rows": int(len(embeddings)),
            "feature_views": sorted(fv.name for fv in store.list_feature_views()),
            "model_version": str(embeddings["model_version"].iloc[0]), "dim": dim,
            "checked_product": pid, "seconds": round(time.time() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--repo", required=True, help="the Feast repository (feature_repo)")
    ap.add_argument("--embeddings", required=True)
    ap.add_argument("--receipt", required=True)
    args = ap.parse_args(argv)
    p = section(FeastParams, load_params(args.params), "feast")
    receipt = materialize(Path(args.repo).resolve(), p.config, pd.read_parquet(args.embeddings))
    Path(args.receipt).parent.mkdir(parents=True, exist_ok=True)
    Path(args.receipt).write_text(json.dumps(receipt, indent=2))
    print(f"materialize: {receipt['rows']} products into the {receipt['online_store']} online store "
          f"({', '.join(receipt['feature_views'])}) in {receipt['seconds']}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
