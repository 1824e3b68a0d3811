"""materialize: apply the Feast repository and publish product embeddings to the online store.

Runs on every `dvc repro` (see vlclip.receipt): when the receipt names these embeddings and a spread
sample of products reads back from the online store, nothing is redone."""
from __future__ import annotations

import argparse
import importlib.util
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from serving.delta import delta, digests, read_state, spread, write_state
from serving.features import ATTRIBUTES_VIEW, EMBEDDINGS_VIEW, FeastParams
from serving.online_delete import delete_products
from serving.vectors import check_vectors
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


def materialize(repo: Path, config: str, embeddings: pd.DataFrame, sample: int, at: datetime | None = None,
                chunk: int = 10_000, publish_ids: list[str] | None = None, delete_ids: list[str] = ()) -> dict:
    """Apply the repository and publish the products' rows to the online store (all of them, or
    only `publish_ids` when the rest are online already), stamped with the publication time `at` (a
    rollback restored from DVC's cache is a new publication), and delete `delete_ids` (products no
    longer in the catalog). Vectors no store may hold are refused first, naming the products; a
    product whose online event is newer than `at` (another writer published after this run began)
    keeps its newer value, and the run fails naming it."""
    from feast import FeatureStore

    check_vectors(embeddings)
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / config)
    store.apply(load_definitions(repo))
    at = at or datetime.now(UTC)  # to the microsecond: a publication in the same second as the last one still lands
    ids = embeddings["product_id"].astype(str)
    rows = embeddings if publish_ids is None else embeddings[ids.isin(set(publish_ids))]
    newer = publish(store, rows, at, chunk)
    if newer:
        raise RuntimeError(f"the online store holds newer events than this publication ({at.isoformat()}) for "
                           f"{len(newer)} product(s) {newer[:5]}; they keep their newer values")
    delete_products(store, [EMBEDDINGS_VIEW, ATTRIBUTES_VIEW], list(delete_ids))
    wrong = missing_rows(store, embeddings, sample)  # the receipt proves the online store answers
    if wrong:
        raise RuntimeError(f"the online store does not return what was materialized for {wrong[:5]}")
    left = still_online(store, list(delete_ids)[:sample])
    if left:
        raise RuntimeError(f"deleted products still read back from the online store: {left[:5]}")
    print(f"materialize: {len(rows)} products written, {len(delete_ids)} deleted")
    return {"config": config, "online_store": store.config.online_store.type,
            "registry": str(store.config.registry.path), "rows": int(len(embeddings)),
            "feature_views": sorted(fv.name for fv in store.list_feature_views()),
            "model_version": str(embeddings["model_version"].iloc[0]),
            "dim": len(embeddings["fused_embedding"].iloc[0])}


def still_online(store, ids: list[str]) -> list[str]:
    if not ids:
        return []
    got = store.get_online_features(features=[f"{EMBEDDINGS_VIEW}:model_version"],
                                    entity_rows=[{"product_id": i} for i in ids]).to_dict()["model_version"]
    return [i for i, v in zip(ids, got) if v is not None]


def changes(repo: Path, embeddings: pd.DataFrame, old: dict | None, state: pd.DataFrame | None,
            config: str, sample: int) -> tuple[list[str] | None, list[str]]:
    """-> (ids to publish, None for all; ids to delete) against what the last run published: only
    the changed rows when the same model went to the same store and a sample of the unchanged ones
    still reads back (a wiped store gets everything), and the products gone either way."""
    from feast import FeatureStore

    if state is None:
        return None, []
    new = digests(embeddings)
    gone = state["product_id"][~state["product_id"].isin(new["product_id"])].tolist()
    same = old and old.get("config") == config and old.get("model_version") == str(embeddings["model_version"].iloc[0])
    if not same:
        return None, gone
    changed = delta(state, new)[0]
    unchanged = embeddings[~embeddings["product_id"].astype(str).isin(set(changed))]
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / config)
    return (None if missing_rows(store, unchanged, sample) else changed), gone


def newer_online(store, ids: list[str], at: datetime) -> list[str]:
    """Of `ids`, those whose online embeddings row carries an event time after `at` (seconds)."""
    got = store.get_online_features(features=[f"{EMBEDDINGS_VIEW}:model_version"],
                                    entity_rows=[{"product_id": i} for i in ids]).to_dict(include_event_timestamps=True)
    limit = int(at.timestamp())
    return [i for i, ts in zip(ids, got["model_version__ts"]) if ts and int(ts) > limit]


def publish(store, embeddings: pd.DataFrame, at: datetime, chunk: int) -> list[str]:
    """Write both feature views chunk by chunk, never over a newer online event; -> the ids skipped."""
    rows = embeddings.assign(event_timestamp=pd.Timestamp(at), product_id=embeddings["product_id"].astype(str))
    skipped: list[str] = []
    for start in range(0, len(rows), chunk):
        part = rows.iloc[start:start + chunk]
        newer = newer_online(store, part["product_id"].tolist(), at)
        if newer:
            skipped += newer
            part = part[~part["product_id"].isin(newer)]
        if len(part):
            for view in (EMBEDDINGS_VIEW, ATTRIBUTES_VIEW):
                store.write_to_online_store(view, part)
    return skipped


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
    ap.add_argument("--state", help="digests of the rows last published, so a change writes only what changed")
    args = ap.parse_args(argv)
    p = section(FeastParams, load_params(args.params), "feast")
    repo, embeddings = Path(args.repo).resolve(), pd.read_parquet(args.embeddings)
    fingerprint = receipt.sha256_file(args.embeddings)
    if verified(repo, p.config, embeddings, receipt.read(args.receipt), fingerprint, p.verify_sample):
        print(f"materialize: the online store holds these {len(embeddings)} products (checked "
              f"{min(len(embeddings), p.verify_sample)}); nothing to do")
        return 0
    old = receipt.read(args.receipt)
    state = read_state(args.state, (old or {}).get("rows_sha256"))
    publish_ids, gone = changes(repo, embeddings, old, state, p.config, p.verify_sample)
    receipt.clear(args.receipt)
    t0 = time.time()
    made = {**materialize(repo, p.config, embeddings, p.verify_sample, publish_ids=publish_ids, delete_ids=gone),
            "embeddings_sha256": fingerprint}
    if args.state:
        made["rows_sha256"] = write_state(args.state, digests(embeddings))
    receipt.write(args.receipt, made)
    print(f"materialize: {made['rows']} products in the {made['online_store']} online store "
          f"({', '.join(made['feature_views'])}) in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
