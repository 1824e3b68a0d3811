"""The scale-out configuration against the real PostgreSQL and Redis on this machine (no mocks)."""
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture
def pg_database():
    name = f"vlclip_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"{PG}/{name}"
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _metrics(val_hits: float) -> dict:
    """A variant's entry of metrics/retrieval.json: the gate reads the validation figures."""
    return {"hits@5": 0.5, "mrr": 0.2, "val": {"hits@5": val_hits, "mrr": 0.2}}


def test_mlflow_registry_on_postgresql(pg_database, tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    from registry import load_champion
    from registry.promote import promote
    from registry.register import register
    from vlclip.encoder import ModelParams, create, save_checkpoint
    from vlclip.tracking import MlflowParams, setup

    monkeypatch.delenv("VLCLIP_MLFLOW_URI", raising=False)
    p = MlflowParams(tracking_uri=pg_database, artifact_root=str(tmp_path / "artifacts"))
    setup(p)
    assert mlflow.get_tracking_uri().startswith("postgresql")
    receipts = []
    for hits in (0.4, 0.3):  # the second candidate is worse and must not take the champion alias
        model, *_ = create(ModelParams("vlclip-tiny"))
        ckpt = save_checkpoint(model, ModelParams("vlclip-tiny"), tmp_path / f"ckpt{hits}")
        receipts.append(register(ckpt, _metrics(hits), p, "shop-a"))
    assert receipts[0]["promoted"] and not receipts[1]["promoted"]
    assert receipts[1]["champion"] == receipts[0]["version"]
    # the same checkpoint again (a re-run, a reproduced retrain): the same version, no new one
    assert register(ckpt, _metrics(0.3), p, "shop-a") == receipts[1]
    assert len(MlflowClient().search_model_versions("name = 'vl-clip'")) == 2
    encoder, version = load_champion(pg_database)
    assert version == receipts[0]["version"] and encoder.encode_text(["a red mug"]).shape == (1, 128)
    client = MlflowClient()
    ok, message = promote(client, "vl-clip", receipts[1]["version"], "hits@5")
    assert not ok and "stays challenger" in message
    ok, _ = promote(client, "vl-clip", receipts[1]["version"], "hits@5", force=True)
    assert ok and str(client.get_model_version_by_alias("vl-clip", "champion").version) == receipts[1]["version"]
    ok, message = promote(client, "vl-clip", receipts[1]["version"], "hits@5")
    assert ok and "already champion" in message
    # another catalog's first model is its champion whatever its metric; switching back serves shop-a's again
    model, *_ = create(ModelParams("vlclip-tiny"))
    other = register(save_checkpoint(model, ModelParams("vlclip-tiny"), tmp_path / "b"), _metrics(0.1), p, "shop-b")
    assert other["promoted"] and other["champion"] == other["version"] == load_champion(pg_database)[1]
    back = register(ckpt, _metrics(0.3), p, "shop-a")
    assert back["champion"] == receipts[1]["version"] == load_champion(pg_database)[1]


def test_feast_redis_online_store_and_postgresql_registry(pg_database, tmp_path):
    from serving.features import ProductFeatures
    from serving.materialize import materialize

    repo = tmp_path / "feature_repo"
    repo.mkdir()
    shutil.copy(ROOT / "feature_repo" / "definitions.py", repo)
    config = (ROOT / "feature_repo" / "feature_store.scaleout.yaml").read_text()
    project = f"vlclip_{uuid.uuid4().hex[:6]}"  # own key space in the shared Redis
    config = config.replace("postgresql+psycopg://postgres@127.0.0.1:5432/vlclip_feast", pg_database)
    config = config.replace("project: vlclip", f"project: {project}")
    (repo / "feature_store.scaleout.yaml").write_text(config)
    rng = np.random.default_rng(0)
    vec = lambda: list((v := rng.standard_normal(16).astype(np.float32)) / np.linalg.norm(v))  # noqa: E731
    emb = pd.DataFrame({"product_id": [f"P{i}" for i in range(20)], "product_type": ["mug", "hat"] * 10,
                        "title": [f"t{i}" for i in range(20)], "image_path": ["x"] * 20,
                        "image_embedding": [vec() for _ in range(20)], "text_embedding": [vec() for _ in range(20)],
                        "fused_embedding": [vec() for _ in range(20)], "model_version": "1",
                        "event_timestamp": pd.Timestamp(datetime.now(UTC).replace(microsecond=0))})
    (tmp_path / "data" / "embeddings").mkdir(parents=True)
    emb.to_parquet(tmp_path / "data" / "embeddings" / "products.parquet")
    receipt = materialize(repo, "feature_store.scaleout.yaml", emb, sample=8)
    assert receipt["online_store"] == "redis" and receipt["rows"] == 20
    with sa.create_engine(pg_database).connect() as c:  # the registry really lives in PostgreSQL
        names = {r[0] for r in c.execute(sa.text("SELECT feature_view_name FROM feature_views"))}
    assert names == {"product_embeddings", "product_attributes"}
    feats = ProductFeatures(str(repo), "feature_store.scaleout.yaml")
    got = feats.embedding("P7")
    assert got is not None and np.allclose(got, emb["fused_embedding"][7], atol=1e-6)
    assert feats.embedding("nope") is None
