"""What one model version serves from: its encoder, index, Feast features and product table, loaded
together (`build_state`) and swapped whole on reload (serving.live).

Text and image searches go through batchers (serving.batching), so the encoder runs only on their
worker threads, once per batch of concurrent queries, and each shard gets one batched query (on a
second thread, while the next batch encodes). With `serve.encode_process` the forward passes run in
child processes (serving.encoder_process) and with `serve.search_process` the Edge search does
(serving.backends.process): the service process's GIL is left to the HTTP loop. Edge shard and
Qdrant client queries are thread-safe (tested); Feast's SQLite online store shares one connection, so
Feast reads are serialized by a lock, and /similar reads the fused vectors of all its queued requests
in one online read.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.backends import IndexParams, Searcher, index_version, open_searcher
from serving.batching import Batcher
from serving.features import FeastParams, ProductFeatures
from serving.provenance import ProvenancePaths, read_provenance

PRODUCT_COLUMNS = ["product_type", "title", "image_path"]


@dataclass(frozen=True)
class ServeParams:
    host: str = "127.0.0.1"
    port: int = 8000
    default_k: int = 10
    max_json_bytes: int = 65_536          # a JSON request body (a query is a few words)
    max_upload_bytes: int = 10_000_000    # a multipart image upload
    max_query_chars: int = 1_000
    max_upload_pixels: int = 25_000_000   # decoded width x height, read from the header before decoding
    max_batch: int = 16                   # concurrent queries the encoder runs as one batch
    torch_threads: int = 1                # threads per forward pass (the text and image batchers each run one)
    encode_process: bool = False          # forward passes in child processes (off the HTTP loop's GIL)
    search_process: bool = True           # edge backend: the shards are held and searched by a child process
    reload_poll_s: float = 30.0           # follow the champion alias every this many seconds (0: only on demand)
    keep_alive_s: float = 75.0            # idle keep-alive connections live this long (above a balancer's idle timeout)


@dataclass(frozen=True)
class ServicePaths:
    """Where the stages left what the service reads (taken from dvc.yaml by the caller)."""

    embeddings: Path      # the embed stage's table
    index: Path | None    # the edge backend's shard directory (the qdrant backend ignores it)
    feature_repo: Path    # the Feast repository
    provenance: ProvenancePaths | None = None  # source images, crop boxes, refined queries (the search page)


@dataclass
class ServiceState:
    """One model version's encoder, index, features and products; swapped whole on reload."""

    encoder: Any                      # vlclip.encoder.Encoder or anything with its encode_text (ids=),
                                      # encode_images, text_ids, context_length and close
    searcher: Searcher
    features: ProductFeatures | None  # None: /products/{id}/similar answers 503
    products: pd.DataFrame            # index product_id; columns product_type, title, image_path
    model_version: str
    default_k: int = 10
    max_batch: int = 16
    details: pd.DataFrame | None = None  # serving.provenance.read_provenance; None: not recorded
    # (batcher, step, batch size or None after the first step, seconds) for every batch step: set when
    # the version goes live (the app's metrics), after the version's own warm-up
    observe: Callable[[str, str, int | None, float], None] | None = None
    _feast: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        # the encoder is looked up per batch, not bound here; a batch's search runs while the next encodes
        self._text = Batcher(lambda items: self.encoder.encode_text([q for (q, _), _, _ in items],
                                                                    ids=[i for (_, i), _, _ in items]), self.max_batch,
                             f"search-text-{self.model_version}", then=self._search,
                             observe=self._heard("text", "encode", "search"))
        self._images = Batcher(lambda items: self.encoder.encode_images([q for q, _, _ in items]), self.max_batch,
                               f"search-image-{self.model_version}", then=self._search,
                               observe=self._heard("image", "encode", "search"))
        self._similar = Batcher(self._fused_vectors, self.max_batch, f"similar-{self.model_version}",
                                then=self._search_fused, observe=self._heard("similar", "read", "search"))

    def _heard(self, batcher: str, *steps: str) -> Callable[[int, int, float], None]:
        def heard(step: int, size: int, seconds: float) -> None:
            if self.observe is not None:  # a batch's size once, with its first step
                self.observe(batcher, steps[step], size if step == 0 else None, seconds)
        return heard

    def search_text(self, query: str, product_type: str | None, k: int, ids: list | None = None) -> Future:
        """A future of the products whose image is nearest the query text; concurrent queries run as
        one batch. `ids`: the query's token ids where they were read already (Encoder.text_ids)."""
        return self._text.submit(((query, ids), product_type, k))

    def search_image(self, image, product_type: str | None, k: int) -> Future:
        return self._images.submit((image, product_type, k))

    def similar(self, product_id: str, product_type: str | None, k: int) -> Future:
        """A future of the products whose fused vector is nearest this product's, read from the online
        store, or of None when the store holds no fused vector for it. Concurrent requests share one
        online read and one batched search."""
        return self._similar.submit((product_id, product_type, k))

    def _search(self, items: list[tuple], vectors: np.ndarray, using: str = "image") -> list[list[dict]]:
        """(query, product type, k) per request and the queries' vectors -> hits; both towers land on
        image vectors."""
        _, types, ks = zip(*items)
        return self.searcher.search_many(vectors, list(types), list(ks), using=using)

    def _fused_vectors(self, items: list[tuple]) -> list[np.ndarray | None]:
        with self._feast:
            return self.features.embeddings([pid for pid, _, _ in items], "fused_embedding")

    def _search_fused(self, items: list[tuple], vectors: list[np.ndarray | None]) -> list[list[dict] | None]:
        found = [i for i, v in enumerate(vectors) if v is not None]
        hits = self._search([items[i] for i in found], np.stack([vectors[i] for i in found]), "fused") if found else []
        out: list[list[dict] | None] = [None] * len(items)
        for i, h in zip(found, hits):
            out[i] = h
        return out

    def close(self) -> None:
        self._text.close()
        self._images.close()
        self._similar.close()
        self.searcher.close()
        self.encoder.close()  # an EncoderProcess stops its children


def warm(state: ServiceState) -> None:
    """One query of each kind, so the first real request pays no lazy load (Feast, thread pools)."""
    from PIL import Image

    state.search_text("warm up", None, 1).result(60)
    state.search_image(Image.new("RGB", (32, 32), "gray"), None, 1).result(60)
    if state.features is not None and len(state.products):
        state.similar(str(state.products.index[0]), str(state.products["product_type"].iloc[0]), 1).result(60)


def read_products(path: Path, root: Path) -> tuple[pd.DataFrame, str]:
    """The embed stage's table -> (products indexed by product_id, its model_version)."""
    table = pd.read_parquet(path, columns=["product_id", *PRODUCT_COLUMNS, "model_version"])
    versions = sorted(table["model_version"].astype(str).unique())
    if len(versions) != 1:
        raise ValueError(f"{path} mixes model versions {versions}")
    products = table.set_index("product_id")[PRODUCT_COLUMNS].astype(str)
    products["image_path"] = [p if Path(p).is_absolute() else str(root / p) for p in products["image_path"]]
    return products, versions[0]


def champion(params: dict, root: Path) -> str:
    """The model version the registry's champion alias points at now (one query, nothing loaded)."""
    from registry import champion_version
    from vlclip.params import section
    from vlclip.tracking import MlflowParams, tracking_uri

    mlflow_params = section(MlflowParams, params, "mlflow")
    return champion_version(tracking_uri(mlflow_params, root), mlflow_params.model_name)


def published_versions(params: dict, paths: ServicePaths, root: Path) -> dict[str, str]:
    """The model version the champion alias, the embeddings table and the index each hold, read
    cheaply (no model, no shard opened)."""
    import pyarrow.parquet as pq

    from vlclip.params import section

    first = pq.ParquetFile(paths.embeddings).read_row_group(0, columns=["model_version"]).column(0)
    return {"champion": champion(params, root),
            "embeddings": str(first[0]) if len(first) else "",
            "index": index_version(section(IndexParams, params, "index"), paths.index)}


def _open_index(params: IndexParams, serve: ServeParams, path: Path | None) -> Searcher:
    """The index searcher; Edge shards in a child process when `serve.search_process` (its binding keeps
    the GIL while it searches, so in process every search would stall the HTTP loop and the encoder)."""
    if serve.search_process and params.backend == "edge":
        from serving.backends.process import SearcherProcess

        return SearcherProcess(params, path)
    return open_searcher(params, path)


def serving_encoder(uri: str, tracking: str):
    """The registered model as the service runs it."""
    from registry import load_encoder_uri

    encoder = load_encoder_uri(uri, tracking)
    encoder.trim_text = True  # a query reads its own tokens, not the whole context
    encoder.traced = True     # forward passes that do not take the GIL from the HTTP loop
    return encoder


def _open_encoder(uri: str, tracking: str, serve: ServeParams):
    """The champion's encoder; its forward passes in child processes when `serve.encode_process`, and
    then this process keeps only its tokenizer (to check queries' lengths), not its model."""
    encoder = serving_encoder(uri, tracking)
    if not serve.encode_process:
        return encoder
    from serving.encoder_process import EncoderProcess
    from vlclip.encoder import TextIds

    return EncoderProcess(TextIds(encoder.tokenizer), functools.partial(serving_encoder, uri, tracking),
                          serve.torch_threads)


def build_state(params: dict, paths: ServicePaths, root: Path) -> ServiceState:
    """Load the champion encoder, the index, Feast and the product table; refuse to serve when the
    encoder, the index and the embeddings come from different model versions (queries would be
    embedded in a different space than the index), checked before anything heavy is loaded. `root`
    anchors a relative SQLite tracking URI and relative image paths."""
    from vlclip.params import section
    from vlclip.tracking import MlflowParams, tracking_uri

    root = Path(root)
    versions = published_versions(params, paths, root)
    if len(set(versions.values())) != 1:
        raise RuntimeError(f"model versions disagree {versions}; rerun embed, materialize and index")
    index_params, serve = section(IndexParams, params, "index"), section(ServeParams, params, "serve")
    mlflow_params, feast = section(MlflowParams, params, "mlflow"), section(FeastParams, params, "feast")
    version = versions["champion"]
    searcher = _open_index(index_params, serve, paths.index)  # fails fast when another process holds the shards
    encoder = None
    try:
        products, table_version = read_products(paths.embeddings, root)
        if {table_version, str(searcher.model_version)} != {version}:  # republished while loading
            raise RuntimeError(f"model versions changed while loading: champion {version}, embeddings "
                               f"{table_version}, index {searcher.model_version}")
        encoder = _open_encoder(f"models:/{mlflow_params.model_name}/{version}", tracking_uri(mlflow_params, root),
                                serve)
        features = ProductFeatures(paths.feature_repo, feast.config)
        details = read_provenance(paths.provenance, root) if paths.provenance else None
    except BaseException:
        searcher.close()
        if encoder is not None:
            encoder.close()  # an EncoderProcess stops its children
        raise
    return ServiceState(encoder=encoder, searcher=searcher, features=features, products=products,
                        model_version=str(version), default_k=serve.default_k, max_batch=serve.max_batch,
                        details=details)


