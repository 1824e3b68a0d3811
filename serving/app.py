"""The retrieval service: text or image -> products of one type (or all), and similar products.

`create_app(load_state)` builds the FastAPI app; the state loads in a background thread once the
server is up (serving.live), so importing this module loads nothing and /healthz answers at once.
`serving.state.build_state` wires the real parts (champion encoder from the MLflow registry, the
index, Feast, the embeddings table); tests pass their own.
"""
from __future__ import annotations

import asyncio
import functools
import html
import logging
import signal
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from serving.fastpath import FastSearch
from serving.limits import BodyLimit, check_query, decode_upload, install_error_handlers, short
from serving.live import Borrow, Live
from serving.observe import WARMUP_HEADER, Metrics, Observe, start_logging
from serving.provenance import describe
from serving.state import ServeParams, ServicePaths, ServiceState, build_state, champion, read_products, warm

__all__ = ["ServeParams", "ServicePaths", "ServiceState", "build_state", "create_app", "read_products", "run"]

MAX_K = 100
PAGE = Path(__file__).parent / "static" / "index.html"
log = logging.getLogger("vlclip.serve")


class SearchBody(BaseModel):
    query: str
    product_type: str | None = None
    k: int | None = Field(default=None, ge=1, le=MAX_K)


router = APIRouter()


async def get_state(request: Request) -> ServiceState:
    st = request.scope["state"].get("vlclip.state")
    if st is None:
        raise HTTPException(503, f"not ready ({request.scope['state'].get('vlclip.not_ready', 'loading')})")
    return st


State = Annotated[ServiceState, Depends(get_state)]


def _check_type(st: ServiceState, product_type: str | None) -> str | None:
    product_type = (product_type or "").strip().lower() or None  # ingest lower-cases types; "" = all types
    if product_type is not None and product_type not in st.searcher.types():
        raise HTTPException(422, f"unknown product_type {short(product_type)}; GET / lists the known types")
    return product_type


def _product(st: ServiceState, product_id: str) -> str:
    if product_id not in st.products.index:
        raise HTTPException(404, f"unknown product_id {short(product_id)}")
    return product_id


def _results(st: ServiceState, hits: list[dict], **head) -> JSONResponse:
    """The hits as the response (built here: the framework's generic serialization of a returned dict
    costs more than the search's own Python under load)."""
    return JSONResponse({**head, "results": [{key: h[key] for key in ("product_id", "score", "product_type", "title")}
                                             for h in hits], "model_version": st.model_version})


@router.api_route("/healthz", methods=["GET", "HEAD"])
def healthz(request: Request) -> dict:
    """Liveness: the process answers (it may still be loading)."""
    return {"status": "ok", "model_version": request.app.state.live.model_version}


@router.api_route("/readyz", methods=["GET", "HEAD"])
def readyz(request: Request):
    live: Live = request.app.state.live
    body = {"status": live.status, "model_version": live.model_version, "last_reload": live.last_reload}
    if live.reason:
        body["reason"] = live.reason
    return JSONResponse(body, status_code=200 if live.ready else 503)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    data, content_type = request.app.state.metrics.exposition()
    return Response(data, media_type=content_type)


@router.post("/admin/reload")
def reload(request: Request) -> dict:
    """Load the champion's version and swap it in (loopback clients only); SIGHUP does the same."""
    if (request.client.host if request.client else "") not in ("127.0.0.1", "::1", "testclient"):
        raise HTTPException(403, "reload is accepted from the loopback interface only")
    outcome = request.app.state.live.reload()
    request.app.state.metrics.reloads.labels(outcome["outcome"]).inc()
    return outcome


@router.post("/search")
async def search(body: SearchBody, st: State, request: Request) -> JSONResponse:
    return await answer_search(request.app.state.limits, st, body.query, body.product_type, body.k)


async def answer_search(limits: ServeParams, st: ServiceState, query: str, product_type: str | None,
                        k: int | None) -> JSONResponse:
    """/search once its body is read (the route, and serving.fastpath for well-formed bodies)."""
    query, ids = check_query(query, limits.max_query_chars, st.encoder.text_ids, st.encoder.context_length)
    product_type = _check_type(st, product_type)
    return _results(st, await asyncio.wrap_future(st.search_text(query, product_type, k or st.default_k, ids)))


@router.post("/search/image")
async def search_image(st: State, request: Request, file: Annotated[UploadFile, File()],
                       product_type: Annotated[str | None, Form()] = None,
                       k: Annotated[int | None, Form(ge=1, le=MAX_K)] = None) -> JSONResponse:
    product_type = _check_type(st, product_type)
    data = await file.read()  # decoding is CPU work: off the event loop
    image = await run_in_threadpool(decode_upload, data, request.app.state.limits.max_upload_pixels)
    return _results(st, await asyncio.wrap_future(st.search_image(image, product_type, k or st.default_k)))


@router.get("/products/{product_id}/similar")
async def similar(product_id: str, st: State, k: Annotated[int | None, Query(ge=1, le=MAX_K)] = None
                  ) -> JSONResponse:
    _product(st, product_id)
    if st.features is None:
        raise HTTPException(503, "no Feast online store configured for this service")
    product_type = str(st.products.at[product_id, "product_type"])
    k = k or st.default_k
    hits = await asyncio.wrap_future(st.similar(product_id, product_type, k + 1))  # +1: the product finds itself
    if hits is None:
        raise HTTPException(404, f"product {short(product_id)} has no fused_embedding in the online store; "
                                 "run the materialize stage")
    return _results(st, [h for h in hits if h["product_id"] != product_id][:k], product_id=product_id,
                    product_type=product_type)


def _recorded(st: ServiceState, product_id: str) -> bool:
    """Whether the stages' provenance (source image, crop box, refined query) holds this product."""
    return st.details is not None and product_id in st.details.index


@router.get("/products/{product_id}")
def product(product_id: str, st: State) -> dict:
    """What the product's result stands on: its refined query and the crop box in its source image."""
    row = st.products.loc[_product(st, product_id)]
    out = {"product_id": product_id, "product_type": row["product_type"], "title": row["title"]}
    found = describe(st.details, product_id) if _recorded(st, product_id) else \
        {"query": None, "box": None, "fallback": None}
    return {**out, **found, "model_version": st.model_version}


@router.get("/images/{product_id}/source")
def source_image(product_id: str, st: State) -> FileResponse:
    """The catalog image the crop was cut from."""
    if not _recorded(st, _product(st, product_id)):
        raise HTTPException(404, f"no source image recorded for product {short(product_id)}")
    path = Path(str(st.details.at[product_id, "source_path"]))
    if not path.is_file():
        raise HTTPException(404, f"the source image of product {short(product_id)} is missing on the server")
    return FileResponse(path, headers={"X-Model-Version": st.model_version})


@router.get("/images/{product_id}")
def image(product_id: str, st: State) -> FileResponse:
    path = Path(str(st.products.at[_product(st, product_id), "image_path"]))
    if not path.is_file():
        raise HTTPException(404, f"the image of product {short(product_id)} is missing on the server")
    return FileResponse(path, headers={"X-Model-Version": st.model_version})


@router.get("/", response_class=HTMLResponse)
def page(st: State) -> str:
    options = "".join(f'<option value="{html.escape(t)}">{html.escape(t)}</option>' for t in st.searcher.types())
    return (PAGE.read_text(encoding="utf-8").replace("<!--TYPE_OPTIONS-->", options)
            .replace("{{MODEL_VERSION}}", html.escape(st.model_version)))


def create_app(load_state: Callable[[], ServiceState], limits: ServeParams | None = None,
               probe: Callable[[], str] | None = None, on_fail: Callable[[str], None] = lambda reason: None,
               fast_search: bool = True, access_log: Callable[[str], None] | None = None) -> FastAPI:
    """`load_state` builds one version's state; `probe` (optional) names the champion's version now,
    cheaply, so polling and reloads skip loading when nothing moved; `fast_search`: well-formed
    /search bodies skip the framework's request machinery (serving.fastpath); `access_log`: where the
    access log's lines go (an AccessLog's write; else the `vlclip.access` logger)."""
    limits = limits or ServeParams()
    metrics = Metrics()

    def swapped(state: ServiceState) -> None:
        state.observe = metrics.batch
        metrics.serving(str(state.model_version))
        metrics.ready.set(1)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.live = Live(load_state, warm, probe, on_swap=swapped, on_fail=on_fail,
                              after_publish=lambda: warm_routes(app))
        app.state.live.start(limits.reload_poll_s)
        _on_sighup(app.state.live)
        try:
            yield
        finally:
            app.state.live.close()

    app = FastAPI(title="vlclip", summary="VL-CLIP product retrieval", lifespan=lifespan)
    app.state.limits, app.state.metrics = limits, metrics
    install_error_handlers(app)
    app.include_router(router)
    if fast_search:
        route = next(r for r in router.routes if getattr(r, "path", None) == "/search")
        app.add_middleware(FastSearch, answer=functools.partial(answer_search, limits), route=route, max_k=MAX_K)
    app.add_middleware(Borrow)
    app.add_middleware(BodyLimit, max_bytes=limits.max_json_bytes, max_upload_bytes=limits.max_upload_bytes)
    app.add_middleware(Observe, metrics=metrics, write=access_log)
    return app


def warm_routes(app: FastAPI, rounds: int = 3) -> None:
    """A few requests of each kind through the app's own stack (routing, validation, middleware,
    serialization), in process, so the first request from outside pays for none of it."""
    from fastapi.testclient import TestClient

    with app.state.live.use() as st:
        product = str(st.products.index[0]) if len(st.products) else "none"
    # no `with`: the lifespan is not run again; the header keeps these out of metrics and the access log
    client, png = TestClient(app, headers={WARMUP_HEADER.decode(): "1"}), _gray_png()
    for _ in range(rounds):
        client.post("/search", json={"query": "warm up"})
        client.post("/search/image", files={"file": ("w.png", png, "image/png")})
        client.get(f"/products/{product}/similar")


def _gray_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "gray").save(buf, format="PNG")
    return buf.getvalue()


def _on_sighup(live: Live) -> None:
    """SIGHUP reloads the champion (in a thread: loading takes seconds). Only the main thread may
    install handlers; in a test client's thread nothing is installed."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=live.reload, daemon=True).start())


def _threads(n: int) -> None:
    """Threads each forward pass may use. The HTTP loop and the two batchers need cores of their own:
    more torch threads than free cores spin against each other (2 cores under load: a batch of 32
    queries took 251 ms with 2 threads, 37 ms with 1)."""
    import torch

    torch.set_num_threads(max(1, n))


def run(params: dict, paths: ServicePaths, root: Path, host: str, port: int) -> int:
    """Serve until stopped; -> 1 when the first load fails (the reason is logged, no stack trace)."""
    import uvicorn

    from vlclip.params import section

    access_log = start_logging()
    root = Path(root)
    serve = section(ServeParams, params, "serve")
    _threads(serve.torch_threads)
    server: list[uvicorn.Server] = []
    app = create_app(lambda: build_state(params, paths, root), serve, lambda: champion(params, root),
                     on_fail=lambda reason: setattr(server[0], "should_exit", True), access_log=access_log.write)
    server.append(uvicorn.Server(uvicorn.Config(app, host=host, port=port, access_log=False,
                                                timeout_keep_alive=serve.keep_alive_s)))
    try:
        server[0].run()
    finally:
        access_log.stop()
    return 1 if app.state.live.status == "failed" else 0
