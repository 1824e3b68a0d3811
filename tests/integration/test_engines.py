"""`compute.engine: ray` on the session's catalog: refine, ground and embed run as Ray Data actor pools on
a local 2-CPU Ray and give what the local engine gave in the session's `dvc repro`."""
import sys

import numpy as np
import pandas as pd
import yaml

from tests.integration.conftest import run

# the three stages in one process, so one local Ray serves them all; no caches: every product goes to Ray
DRIVER = """
import sys
from curation.ground import main as ground
from curation.refine import main as refine
from serving.embed import main as embed
out = sys.argv[1]
p = ["--params", f"{out}/params.yaml"]
assert refine([*p, "--products", "data/dedup/products.parquet", "--out", f"{out}/refine"]) == 0
assert ground([*p, "--products", "data/dedup/products.parquet", "--scout", "models/no_grounding",
               "--out", f"{out}/ground"]) == 0
assert embed([*p, "--receipt", "receipts/register.json", "--products", "data/dedup/products.parquet",
              "--boxes", "data/ground/boxes.csv", "--queries", "data/refine/queries.parquet",
              "--out", f"{out}/embeddings.parquet"]) == 0
import ray
ray.shutdown()
"""


def test_ray_engine_gives_the_local_engines_queries_boxes_crops_and_embeddings(project, tmp_path):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["compute"].update(engine="ray", actors=2, local_cpus=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    r = run([sys.executable, "-c", DRIVER, str(tmp_path)], project, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "(ray)" in r.stdout and "0 from cache" in r.stdout

    local = pd.read_parquet(project / "data/refine/queries.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "refine/queries.parquet"), local)
    assert (tmp_path / "refine/audit.jsonl").read_text() == (project / "data/refine/audit.jsonl").read_text()

    local = pd.read_csv(project / "data/ground/boxes.csv", dtype={"product_id": str})
    remote = pd.read_csv(tmp_path / "ground/boxes.csv", dtype={"product_id": str})
    pd.testing.assert_frame_equal(remote.drop(columns="crop_path"), local.drop(columns="crop_path"))
    for a, b in zip(local["crop_path"], remote["crop_path"]):
        assert (project / a).read_bytes() == open(b, "rb").read(), a

    local = pd.read_parquet(project / "data/embeddings/products.parquet")
    remote = pd.read_parquet(tmp_path / "embeddings.parquet")
    assert remote["product_id"].tolist() == local["product_id"].tolist()
    for col in ("image_embedding", "text_embedding", "fused_embedding"):
        np.testing.assert_allclose(np.stack(remote[col]), np.stack(local[col]), atol=1e-5)
