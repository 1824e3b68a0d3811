"""materialize: apply the Feast repository and publish product embeddings to the online store.

Runs on every `dvc repro` (see vlclip.receipt): when the receipt names these embeddings and a spread
sample of products reads back from the online store, nothing is redone."""
from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from serving.delta import delta, read_state, spread, write_state
from serving.features import ATTRIBUTES_VIEW, EMBEDDINGS_VIEW, FeastParams
from serving.online_delete import delete_products
from serving.table import Embeddings, as_table, take
from vlclip import receipt
from vlclip.params import load_params, section
from vlclip.progress import figures, write_report
from vlclip.tables import count_rows, read_frames


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


def materialize(repo: Path, config: str, embeddings: Embeddings | pd.DataFrame, sample: int,
                at: datetime | None = None, chunk: int = 10_000, publish_ids: list[str] | None = None,
                delete_ids: list[str] = ()) -> dict:
    """Apply the repository and publish the products' rows to the online store (all of them, or
    only `publish_ids` when the rest are online already), stamped with the publication time `at` (a
    rollback restored from DVC's cache is a new publication), and delete `delete_ids` (products no
    longer in the catalog). Vectors no store may hold are refused first, naming the products; a
    product whose online event is newer than `at` (another writer published after this run began)
    keeps its newer value, and the run fails naming it. The table is read a row group at a time."""
    from feast import FeatureStore

    table = as_table(embeddings)  # checked: vectors no store may hold are refused here
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / config)
    store.apply(load_definitions(repo))
    at = at or datetime.now(UTC)  # to the microsecond: a publication in the same second as the last one still lands
    written, newer = publish(store, table.rows(None if publish_ids is None else set(publish_ids)), at, chunk)
    if newer:
        raise RuntimeError(f"the online store holds newer events than this publication ({at.isoformat()}) for "
                           f"{len(newer)} product(s) {newer[:5]}; they keep their newer values")
    delete_products(store, [EMBEDDINGS_VIEW, ATTRIBUTES_VIEW], list(delete_ids))
    wrong = missing_rows(store, table.take(spread(table.n, sample)))  # the receipt proves the online store answers
    if wrong:
        raise RuntimeError(f"the online store does not return what was materialized for {wrong[:5]}")
    left = still_online(store, list(delete_ids)[:sample])
    if left:
        raise RuntimeError(f"deleted products still read back from the online store: {left[:5]}")
    print(f"materialize: {written} products written, {len(delete_ids)} deleted")
    return {"config": config, "online_store": store.config.online_store.type,
            "registry": str(store.config.registry.path), "rows": table.n,
            "feature_views": sorted(fv.name for fv in store.list_feature_views()),
            "model_version": table.model_version, "dim": table.dim}


def still_online(store, ids: list[str]) -> list[str]:
    if not ids:
        return []
    got = store.get_online_features(features=[f"{EMBEDDINGS_VIEW}:model_version"],
                                    entity_rows=[{"product_id": i} for i in ids]).to_dict()["model_version"]
    return [i for i, v in zip(ids, got) if v is not None]


def changes(repo: Path, table: Embeddings, old: dict | None, state: pd.DataFrame | None,
            config: str, sample: int) -> tuple[list[str] | None, list[str]]:
    """-> (ids to publish, None for all; ids to delete) against what the last run published: only
    the changed rows when the same model went to the same store and a sample of the unchanged ones
    still reads back (a wiped store gets everything), and the products gone either way."""
    from feast import FeatureStore

    if state is None:
        return None, []
    new = table.digests
    gone = state["product_id"][~state["product_id"].isin(new["product_id"])].tolist()
    same = old and old.get("config") == config and old.get("model_version") == table.model_version
    if not same:
        return None, gone
    changed = delta(state, new)[0]
    unchanged = np.flatnonzero(~new["product_id"].isin(set(changed)).to_numpy())
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / config)
    rows = table.take([int(unchanged[i]) for i in spread(len(unchanged), sample)])
    return (None if missing_rows(store, rows) else changed), gone


def newer_online(store, ids: list[str], at: datetime) -> list[str]:
    """Of `ids`, those whose online embeddings row carries an event time after `at` (seconds)."""
    got = store.get_online_features(features=[f"{EMBEDDINGS_VIEW}:model_version"],
                                    entity_rows=[{"product_id": i} for i in ids]).to_dict(include_event_timestamps=True)
    limit = int(at.timestamp())
    return [i for i, ts in zip(ids, got["model_version__ts"]) if ts and int(ts) > limit]


def publish(store, frames: Iterable[pd.DataFrame], at: datetime, chunk: int) -> tuple[int, list[str]]:
    """Write both feature views chunk by chunk, never over a newer online event; -> (rows written,
    the ids skipped)."""
    written, skipped = 0, []
    for frame in frames:
        rows = frame.assign(event_timestamp=pd.Timestamp(at), product_id=frame["product_id"].astype(str))
        for start in range(0, len(rows), chunk):
            part = rows.iloc[start:start + chunk]
            newer = newer_online(store, part["product_id"].tolist(), at)
            if newer:
                skipped += newer
                part = part[~part["product_id"].isin(newer)]
            if len(part):
                for view in (EMBEDDINGS_VIEW, ATTRIBUTES_VIEW):
                    store.write_to_online_store(view, part)
                written += len(part)
    return written, skipped


def missing_rows(store, rows: pd.DataFrame) -> list[str]:
    """Product ids, of these rows (a sample), whose online fused embedding is absent or not the one given."""
    ids = rows["product_id"].astype(str).tolist()
    try:
        got = store.get_online_features(features=["product_embeddings:fused_embedding"],
                                        entity_rows=[{"product_id": i} for i in ids]).to_dict()["fused_embedding"]
    except Exception as exc:  # no registry, no table: nothing is there
        print(f"materialize: online store unreadable ({type(exc).__name__}: {exc})")
        return ids
    return [i for i, want, have in zip(ids, rows["fused_embedding"], got)
            if have is None or len(have) != len(want) or not np.allclose(have, want, atol=1e-6)]


def verified(repo: Path, config: str, frames: Callable[[], Iterable[pd.DataFrame]], n: int, old: dict | None,
             fingerprint: str, sample: int) -> bool:
    """Whether the online store still holds what the receipt says was materialized from these embeddings
    (the same file: it was checked when it was published, so only a spread sample of `n` rows is read)."""
    from feast import FeatureStore

    if not old or old.get("embeddings_sha256") != fingerprint or old.get("config") != config:
        return False
    rows = take(frames, spread(n, sample))
    wrong = missing_rows(FeatureStore(repo_path=str(repo), fs_yaml_file=repo / config), rows)
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
    ap.add_argument("--throughput", help="JSON: items, seconds, items/s, peak RSS of a run that published")
    args = ap.parse_args(argv)
    p = section(FeastParams, load_params(args.params), "feast")
    started = time.perf_counter()
    repo, fingerprint, n = Path(args.repo).resolve(), receipt.sha256_file(args.embeddings), count_rows(args.embeddings)

    def frames():
        return read_frames(args.embeddings)

    old = receipt.read(args.receipt)
    if verified(repo, p.config, frames, n, old, fingerprint, p.verify_sample):
        print(f"materialize: the online store holds these {n} products (checked {min(n, p.verify_sample)}); "
              "nothing to do")
        if args.throughput and not Path(args.throughput).exists():  # DVC expects the file
            write_report(args.throughput, {**figures(0, time.perf_counter() - started), "how": "verified"})
        return 0
    table = Embeddings.scan(frames)
    state = read_state(args.state, (old or {}).get("rows_sha256"))
    publish_ids, gone = changes(repo, table, old, state, p.config, p.verify_sample)
    receipt.clear(args.receipt)
    t0 = time.time()
    made = {**materialize(repo, p.config, table, p.verify_sample, publish_ids=publish_ids, delete_ids=gone),
            "embeddings_sha256": fingerprint}
    if args.state:
        made["rows_sha256"] = write_state(args.state, table.digests)
    receipt.write(args.receipt, made)
    run = figures(table.n, time.perf_counter() - started)
    if args.throughput:
        write_report(args.throughput, run)
    print(f"materialize: {made['rows']} products in the {made['online_store']} online store "
          f"({', '.join(made['feature_views'])}) in {time.time() - t0:.1f}s; peak RSS {run['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
