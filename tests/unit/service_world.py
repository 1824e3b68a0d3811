"""A small served world for the service tests: 2 types x 4 colours x 2 shades of products with a
deterministic fake encoder, a real Edge index and a real throw-away Feast repository.

The encoder: a text is the sum of per-word hash vectors, an image is the hash vector of its nearest
palette colour name plus a small per-shade term. So "red" text lands on red images, and two shades
of one colour are each other's nearest neighbours.

`python service_world.py ROOT PORT` builds the world under ROOT and serves it with uvicorn (the
hostile-request tests talk to it over a real socket).
"""
from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from serving.app import ServeParams, ServiceState, create_app, read_products
from serving.backends import IndexParams, build, open_searcher
from serving.features import ProductFeatures
from serving.provenance import ProvenancePaths, read_provenance

DIM = 32
PALETTE = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 50, 220), "yellow": (230, 220, 30)}
TYPES = ["dress", "table lamp"]
VERSION = "7"
UNMATERIALIZED = "table lamp-blue-1"  # in the index and the product table, not in Feast's online store


def _word(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.md5(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=DIM)


def _norm(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


class FakeEncoder:
    dim = DIM
    context_length = 77

    def text_ids(self, text: str) -> list[int]:
        return [0] * (len(text.split()) + 2)

    def close(self) -> None:
        pass

    def encode_text(self, texts: list[str], ids: list | None = None) -> np.ndarray:
        return _norm(np.stack([sum(_word(w) for w in t.lower().split()) for t in texts]))

    def encode_images(self, images: list) -> np.ndarray:
        out = []
        for im in images:
            rgb = np.asarray(im.convert("RGB"), dtype=float).reshape(-1, 3).mean(0)
            name = min(PALETTE, key=lambda c: np.sum((np.array(PALETTE[c]) - rgb) ** 2))
            out.append(_word(name) + 0.3 * _word(str(np.round(rgb).astype(int).tolist())))
        return _norm(np.stack(out))


def _png(rgb: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), rgb).save(buf, format="PNG")
    return buf.getvalue()


def make_catalog(root: Path) -> pd.DataFrame:
    """2 types x 4 colours x 2 shades = 16 products with images and embeddings."""
    enc, rows = FakeEncoder(), []
    (root / "images").mkdir(parents=True)
    for t in TYPES:
        for colour, rgb in PALETTE.items():
            for shade in range(2):
                pid = f"{t}-{colour}-{shade}"
                path = root / "images" / f"{pid}.png"
                path.write_bytes(_png(tuple(max(0, c - 25 * shade) for c in rgb)))
                rows.append({"product_id": pid, "product_type": t, "title": f"{colour} {t} {shade}",
                             "image_path": str(path)})
    df = pd.DataFrame(rows)
    image = enc.encode_images([Image.open(p) for p in df["image_path"]])
    text = enc.encode_text(df["title"].tolist())
    return df.assign(image_embedding=list(image), text_embedding=list(text), fused_embedding=list(_norm(image + text)),
                     model_version=VERSION, event_timestamp=datetime.now(UTC) - timedelta(minutes=5))


def make_feast_repo(repo: Path, table: pd.DataFrame) -> Path:
    """A tiny Feast repo with the names feature_repo/ declares; materializes `table`."""
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, String

    repo.mkdir(parents=True)
    table.to_parquet(repo / "products.parquet")
    (repo / "feature_store.yaml").write_text(
        f"project: vlclip_test\nprovider: local\nregistry: {repo / 'registry.db'}\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\noffline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\nauth:\n  type: no_auth\n")
    product = Entity(name="product", join_keys=["product_id"], value_type=ValueType.STRING)
    src = FileSource(name="product_src", path=str(repo / "products.parquet"), timestamp_field="event_timestamp")
    emb = FeatureView(name="product_embeddings", entities=[product], ttl=timedelta(days=30), source=src,
                      schema=[Field(name=n, dtype=Array(Float32))
                              for n in ("image_embedding", "text_embedding", "fused_embedding")]
                      + [Field(name="model_version", dtype=String)])
    att = FeatureView(name="product_attributes", entities=[product], ttl=timedelta(days=30), source=src,
                      schema=[Field(name="product_type", dtype=String), Field(name="title", dtype=String)])
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=repo / "feature_store.yaml")
    store.apply([product, src, emb, att, FeatureService(name="ranker_features", features=[emb, att])])
    now = datetime.now(UTC)
    store.materialize(start_date=now - timedelta(days=1), end_date=now)
    return repo


INDEX = IndexParams(backend="edge", url="", hnsw_m=16, hnsw_ef_construct=100, hnsw_ef=64, recall_k=10)
INDEX_DIR = "data/index"




PROVENANCE = ProvenancePaths(Path("data/dedup/products.parquet"), Path("data/ground/boxes.csv"),
                             Path("data/refine/queries.parquet"))
FELL_BACK = "dress-yellow-1"  # its detector found nothing: the box is the whole source image


def make_provenance(root: Path, table: pd.DataFrame) -> None:
    """What the dedup, ground and refine stages would have left: a 64x48 source image per product with
    its colour in the box (16, 8)-(48, 40), the box, and a refined query."""
    (root / "sources").mkdir(exist_ok=True)
    boxes, sources = [], []
    for pid, path in zip(table["product_id"], table["image_path"]):
        src = Image.new("RGB", (64, 48), (200, 200, 200))
        with Image.open(path) as im:
            src.paste(im.convert("RGB").resize((32, 32)), (16, 8))
        src.save(root / "sources" / f"{pid}.png")
        sources.append(f"sources/{pid}.png")
        box = (0, 0, 64, 48) if pid == FELL_BACK else (16, 8, 48, 40)
        boxes.append({"product_id": pid, **dict(zip(["x0", "y0", "x1", "y1"], box)), "fallback": pid == FELL_BACK})
    for folder in ("dedup", "ground", "refine"):
        (root / "data" / folder).mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"product_id": table["product_id"], "image_path": sources}).to_parquet(root / PROVENANCE.products)
    pd.DataFrame(boxes).to_csv(root / PROVENANCE.boxes, index=False)
    pd.DataFrame({"product_id": table["product_id"], "query": "a " + table["title"].str.rsplit(" ", n=1).str[0]}
                 ).to_parquet(root / PROVENANCE.queries)


def make_world(root: Path, version: str = VERSION, index_dir: str = INDEX_DIR) -> pd.DataFrame:
    """The catalog, its embeddings table, index, Feast repo and provenance under `root`; -> the table."""
    table = make_catalog(root).assign(model_version=version)
    make_provenance(root, table)
    (root / "data" / "embeddings").mkdir(parents=True, exist_ok=True)
    table.to_parquet(root / "data" / "embeddings" / "products.parquet")
    build(table, INDEX, root / index_dir, log=lambda *_: None)
    make_feast_repo(root / "feature_repo", table[table["product_id"] != UNMATERIALIZED])
    return table


def loader(root: Path, index_dir: str = INDEX_DIR, default_k: int = 5):
    products, version = read_products(root / "data" / "embeddings" / "products.parquet", root)
    paths = ProvenancePaths(*(root / p for p in (PROVENANCE.products, PROVENANCE.boxes, PROVENANCE.queries)))
    details = read_provenance(paths, root) if paths.products.exists() else None
    return lambda: ServiceState(encoder=FakeEncoder(), searcher=open_searcher(INDEX, root / index_dir),
                                features=ProductFeatures(root / "feature_repo"), products=products,
                                model_version=version, default_k=default_k, details=details)


def wait_ready(c, timeout_s: float = 60.0) -> dict:
    """Poll /readyz: the state loads in a background thread once the app is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        res = c.get("/readyz")
        if res.status_code == 200 or res.json()["status"] == "failed":
            return res.json()
        time.sleep(0.05)
    raise TimeoutError("service not ready")



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready_http(url: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    """Poll `url`/readyz until it answers 200 (True), or `proc` exits or the time runs out (False)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


@contextmanager
def serve_world(root: Path, timeout_s: float = 180.0):
    """Build a world under `root` and serve it from a uvicorn subprocess; -> (url, pid) once ready.
    The timeout covers building a Feast repo and an index on a loaded 2-core CI machine."""
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parents[1])])}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(here / "service_world.py"), str(root), str(port)],
                            cwd=here.parents[1], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready_http(url, proc, timeout_s):
            proc.kill()
            raise RuntimeError(f"service did not get ready: {proc.stdout.read().decode()[-3000:]}")
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(root: str, port: str) -> None:
    import uvicorn

    root_dir = Path(root)
    make_world(root_dir)
    app = create_app(loader(root_dir), ServeParams(reload_poll_s=0))
    uvicorn.run(app, host="127.0.0.1", port=int(port), access_log=False, log_level="warning")


if __name__ == "__main__":
    main(*sys.argv[1:3])
