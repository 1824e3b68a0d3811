"""The retrieval service: text or image -> products of one type (or all), and similar products.

`create_app(load_state)` builds the FastAPI app; `load_state` runs in the lifespan, so importing
this module loads nothing. `build_state` wires the real parts (champion encoder from the MLflow
registry, the index, Feast, the embeddings table); tests pass their own.
"""
from __future__ import annotations

import html
import io
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field

from serving.backends import IndexParams, Searcher, open_searcher
from serving.features import FeastParams, ProductFeatures

MAX_K = 100
PAGE = Path(__file__).parent / "static" / "index.html"
PRODUCT_COLUMNS = ["product_type", "title", "image_path"]


@dataclass(frozen=True)
class ServeParams:
    host: str = "127.0.0.1"
    port: int = 8000
    default_k: int = 10


@dataclass(frozen=True)
class ServicePaths:
    """Where the stages left what the service reads (taken from dvc.yaml by the caller)."""

    embeddings: Path      # the embed stage's table
    index: Path | None    # the edge backend's shard directory (the qdrant backend ignores it)
    feature_repo: Path    # the Feast repository


@dataclass
class ServiceState:
    encoder: Any                      # vlclip.encoder.Encoder or anything with encode_text / encode_images
    searcher: Searcher
    features: ProductFeatures | None  # None: /products/{id}/similar answers 503
    products: pd.DataFrame            # index product_id; columns product_type, title, image_path
    model_version: str
    default_k: int = 10


class SearchBody(BaseModel):
    query: str
    product_type: str | None = None
    k: int | None = Field(default=None, ge=1, le=MAX_K)


router = APIRouter()


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


State = Annotated[ServiceState, Depends(get_state)]


def _check_type(st: ServiceState, product_type: str | None) -> str | None:
    product_type = product_type or None  # "" from the page's "all types" option
    if product_type is not None and product_type not in st.searcher.types():
        raise HTTPException(422, f"unknown product_type {product_type!r}; known types: {st.searcher.types()}")
    return product_type


def _results(st: ServiceState, hits: list[dict]) -> dict:
    return {"results": [{key: h[key] for key in ("product_id", "score", "product_type", "title")} for h in hits],
            "model_version": st.model_version}


@router.get("/healthz")
def healthz(st: State) -> dict:
    return {"status": "ok", "model_version": st.model_version, "n_products": int(len(st.products))}


@router.post("/search")
def search(body: SearchBody, st: State) -> dict:
    if not body.query.strip():
        raise HTTPException(422, "query must not be empty")
    product_type = _check_type(st, body.product_type)
    vector = st.encoder.encode_text([body.query.strip()])[0]  # (dim,) text tower -> image vectors
    return _results(st, st.searcher.search(vector, product_type, body.k or st.default_k, using="image"))


@router.post("/search/image")
def search_image(st: State, file: Annotated[UploadFile, File()],
                 product_type: Annotated[str | None, Form()] = None,
                 k: Annotated[int | None, Form(ge=1, le=MAX_K)] = None) -> dict:
    from PIL import Image, UnidentifiedImageError

    product_type = _check_type(st, product_type)
    try:
        image = Image.open(io.BytesIO(file.file.read()))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise HTTPException(400, f"could not decode the uploaded file {file.filename!r} as an image: {exc}") from exc
    vector = st.encoder.encode_images([image.convert("RGB")])[0]
    return _results(st, st.searcher.search(vector, product_type, k or st.default_k, using="image"))


@router.get("/products/{product_id}/similar")
def similar(product_id: str, st: State, k: Annotated[int | None, Query(ge=1, le=MAX_K)] = None) -> dict:
    if product_id not in st.products.index:
        raise HTTPException(404, f"unknown product_id {product_id!r}")
    if st.features is None:
        raise HTTPException(503, "no Feast online store configured for this service")
    vector = st.features.embedding(product_id, "fused_embedding")
    if vector is None:
        raise HTTPException(404, f"product {product_id!r} has no fused_embedding in Feast's online store; "
                                 "run the materialize stage")
    product_type = str(st.products.at[product_id, "product_type"])
    k = k or st.default_k
    hits = st.searcher.search(vector, product_type, k + 1, using="fused")  # +1: the product finds itself
    out = _results(st, [h for h in hits if h["product_id"] != product_id][:k])
    return {"product_id": product_id, "product_type": product_type, **out}


@router.get("/images/{product_id}")
def image(product_id: str, st: State) -> FileResponse:
    if product_id not in st.products.index:
        raise HTTPException(404, f"unknown product_id {product_id!r}")
    path = Path(str(st.products.at[product_id, "image_path"]))
    if not path.is_file():
        raise HTTPException(404, f"image of {product_id!r} is missing at {path}")
    return FileResponse(path)


@router.get("/", response_class=HTMLResponse)
def page(st: State) -> str:
    options = "".join(f'<option value="{html.escape(t)}">{html.escape(t)}</option>' for t in st.searcher.types())
    return (PAGE.read_text(encoding="utf-8").replace("<!--TYPE_OPTIONS-->", options)
            .replace("{{MODEL_VERSION}}", html.escape(st.model_version)))


def create_app(load_state: Callable[[], ServiceState]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.service = load_state()
        try:
            yield
        finally:
            app.state.service.searcher.close()

    app = FastAPI(title="vlclip", summary="VL-CLIP product retrieval", lifespan=lifespan)
    app.include_router(router)
    return app


def read_products(path: Path, root: Path) -> tuple[pd.DataFrame, str]:
    """The embed stage's table -> (products indexed by product_id, its model_version)."""
    table = pd.read_parquet(path, columns=["product_id", *PRODUCT_COLUMNS, "model_version"])
    versions = sorted(table["model_version"].astype(str).unique())
    if len(versions) != 1:
        raise ValueError(f"{path} mixes model versions {versions}")
    products = table.set_index("product_id")[PRODUCT_COLUMNS].astype(str)
    products["image_path"] = [p if Path(p).is_absolute() else str(root / p) for p in products["image_path"]]
    return products, versions[0]


def build_state(params: dict, paths: ServicePaths, root: Path) -> ServiceState:
    """Load the champion encoder, the index, Feast and the product table; refuse to serve when the
    encoder, the index and the embeddings come from different model versions (queries would be
    embedded in a different space than the index). `root` anchors a relative SQLite tracking URI
    and relative image paths."""
    from registry import load_champion
    from vlclip.params import section
    from vlclip.tracking import MlflowParams, tracking_uri

    root = Path(root)
    index_params, serve = section(IndexParams, params, "index"), section(ServeParams, params, "serve")
    mlflow_params, feast = section(MlflowParams, params, "mlflow"), section(FeastParams, params, "feast")
    encoder, version = load_champion(tracking_uri(mlflow_params, root), mlflow_params.model_name, alias="champion")
    products, table_version = read_products(paths.embeddings, root)
    searcher = open_searcher(index_params, paths.index)
    versions = {"champion": str(version), "embeddings": table_version, "index": str(searcher.model_version)}
    if len(set(versions.values())) != 1:
        searcher.close()
        raise RuntimeError(f"model versions disagree {versions}; rerun embed, materialize and index")
    features = ProductFeatures(paths.feature_repo, feast.config)
    return ServiceState(encoder=encoder, searcher=searcher, features=features, products=products,
                        model_version=str(version), default_k=serve.default_k)


def run(params: dict, paths: ServicePaths, root: Path, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(lambda: build_state(params, paths, Path(root))), host=host, port=port)
