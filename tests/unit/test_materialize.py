"""Safe writes to the Feast online store, on SQLite and on the real Redis of this machine: an older
publication never replaces a newer one, and vectors no store may hold are refused by product id."""
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.features import ProductFeatures
from serving.materialize import materialize

ROOT = Path(__file__).resolve().parents[2]
DIM = 16


def _repo(tmp_path: Path, online: str) -> Path:
    repo = tmp_path / "feature_repo"
    repo.mkdir()
    shutil.copy(ROOT / "feature_repo" / "definitions.py", repo)
    store = ("  type: sqlite\n  path: data/online.db\n" if online == "sqlite"
             else "  type: redis\n  connection_string: \"127.0.0.1:6379\"\n")
    project = f"vlclip_{uuid.uuid4().hex[:8]}"  # own key space in the shared Redis
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: data/registry.db\nonline_store:\n{store}"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\nauth:\n  type: no_auth\n")
    return repo


def _table(seed: int, version: str, n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    unit = lambda: list((v := rng.standard_normal(DIM).astype(np.float32)) / np.linalg.norm(v))  # noqa: E731
    return pd.DataFrame({"product_id": [f"P{i}" for i in range(n)], "product_type": ["mug", "hat"] * (n // 2),
                         "title": [f"t{i}" for i in range(n)], "image_path": ["x"] * n,
                         "image_embedding": [unit() for _ in range(n)], "text_embedding": [unit() for _ in range(n)],
                         "fused_embedding": [unit() for _ in range(n)], "model_version": version,
                         "event_timestamp": pd.Timestamp(datetime.now(UTC).replace(microsecond=0))})


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_an_older_publication_never_replaces_a_newer_one(tmp_path, online):
    repo = _repo(tmp_path, online)
    (tmp_path / "data" / "embeddings").mkdir(parents=True)
    new, old = _table(1, "2"), _table(2, "1")
    new.to_parquet(tmp_path / "data" / "embeddings" / "products.parquet")
    now = datetime.now(UTC).replace(microsecond=0)
    assert materialize(repo, "feature_store.yaml", new, sample=12, at=now)["online_store"] == online
    with pytest.raises(RuntimeError, match=r"newer events .* for 12 product\(s\) \['P0', 'P1'"):
        materialize(repo, "feature_store.yaml", old, sample=12, at=now - timedelta(hours=1))
    feats = ProductFeatures(repo)
    for i in (0, 7, 11):
        np.testing.assert_allclose(feats.embedding(f"P{i}"), new["fused_embedding"][i], atol=1e-6)
    assert set(feats.lookup(["P3"])["model_version"]) == {"2"}
    later = materialize(repo, "feature_store.yaml", old, sample=12, at=now + timedelta(hours=1))
    assert later["model_version"] == "1"  # a later publication (a rollback) does replace it
    np.testing.assert_allclose(feats.embedding("P7"), old["fused_embedding"][7], atol=1e-6)


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_bad_vectors_are_refused_by_product_before_any_write(tmp_path, online):
    repo = _repo(tmp_path, online)
    (tmp_path / "data" / "embeddings").mkdir(parents=True)
    table = _table(3, "1")
    table.to_parquet(tmp_path / "data" / "embeddings" / "products.parquet")
    table.at[2, "fused_embedding"] = [float("nan")] * DIM
    table.at[4, "image_embedding"] = [0.0] * DIM
    table.at[5, "text_embedding"] = [1.0] * (DIM + 1)
    table.at[6, "fused_embedding"] = [float("inf")] + [0.0] * (DIM - 1)
    with pytest.raises(ValueError) as err:
        materialize(repo, "feature_store.yaml", table, sample=12)
    message = str(err.value)
    assert "fused_embedding: NaN or infinite for 2 product(s) ['P2', 'P6']" in message
    assert "image_embedding: zero norm for 1 product(s) ['P4']" in message
    assert f"text_embedding: not {DIM}-dimensional for 1 product(s) ['P5']" in message
    assert not (repo / "data" / "registry.db").exists()  # refused before Feast was touched


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_a_catalog_change_writes_only_changed_rows_and_deletes_removed_products(tmp_path, online, capsys):
    from serving.materialize import main

    repo = _repo(tmp_path, online)
    (tmp_path / "data" / "embeddings").mkdir(parents=True)
    emb = tmp_path / "data" / "embeddings" / "products.parquet"
    (tmp_path / "params.yaml").write_text("feast: {config: feature_store.yaml, verify_sample: 64}\n")
    args = ["--params", str(tmp_path / "params.yaml"), "--repo", str(repo), "--embeddings", str(emb),
            "--receipt", str(tmp_path / "r.json"), "--state", str(tmp_path / "rows.parquet")]
    first = _table(4, "1")
    first.to_parquet(emb)
    assert main(args) == 0 and "12 products written, 0 deleted" in capsys.readouterr().out
    extra = _table(5, "1", n=2).assign(product_id=["P20", "P21"])
    second = pd.concat([first.iloc[2:], extra], ignore_index=True)  # P0, P1 gone; P20, P21 new
    second.at[0, "fused_embedding"] = extra["fused_embedding"][0]   # P2 re-embedded
    second.to_parquet(emb)
    assert main(args) == 0 and "3 products written, 2 deleted" in capsys.readouterr().out
    feats = ProductFeatures(repo)
    looked = feats.lookup(["P0", "P1", "P2", "P7", "P21"])
    assert looked["model_version"].tolist()[:2] == [None, None] and set(looked["model_version"][2:]) == {"1"}
    np.testing.assert_allclose(feats.embedding("P2"), extra["fused_embedding"][0], atol=1e-6)
    np.testing.assert_allclose(feats.embedding("P7"), first["fused_embedding"][7], atol=1e-6)
    second.assign(model_version="2").to_parquet(emb)  # a new champion: every row is written again
    assert main(args) == 0 and "12 products written, 0 deleted" in capsys.readouterr().out


def test_an_unchanged_table_is_verified_from_a_sample_and_a_lost_store_is_rebuilt(tmp_path, capsys, monkeypatch):
    """Verifying reads a sample, not the whole table: no scan, no digests; a store that lost its rows is
    written again."""
    from serving import materialize as stage
    from serving.table import Embeddings

    repo = _repo(tmp_path, "sqlite")
    emb = tmp_path / "products.parquet"
    _table(6, "1").to_parquet(emb)
    (tmp_path / "params.yaml").write_text("feast: {config: feature_store.yaml, verify_sample: 4}\n")
    args = ["--params", str(tmp_path / "params.yaml"), "--repo", str(repo), "--embeddings", str(emb),
            "--receipt", str(tmp_path / "r.json")]
    assert stage.main(args) == 0 and "12 products written" in capsys.readouterr().out
    scans, scan = [], Embeddings.scan.__func__
    monkeypatch.setattr(Embeddings, "scan", classmethod(lambda cls, frames: scans.append(1) or scan(cls, frames)))
    assert stage.main(args) == 0 and "holds these 12 products (checked 4)" in capsys.readouterr().out
    assert scans == []
    (repo / "data" / "online.db").unlink()
    assert stage.main(args) == 0 and "12 products written" in capsys.readouterr().out and scans == [1]
