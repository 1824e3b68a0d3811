"""What the service accepts: a body-size limit, query and upload checks, and error bodies that name
the problem and nothing of the server (no path, stack, object repr or echoed megabyte).

Every refusal is a 4xx with {"detail": "..."}; anything unforeseen is a 500 whose body says only
"internal error" and a request id, with the traceback in the server's log.
"""
from __future__ import annotations

import io
import json
import logging
import uuid
import warnings

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("vlclip.serve")


def short(value: object, limit: int = 64) -> str:
    """A client-supplied value quoted in an error: at most `limit` characters, repr-escaped."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a request body over its limit (`max_upload_bytes` for multipart
    uploads, `max_bytes` for anything else), whether it declares its length or streams it
    (chunked); the route never sees the rest."""

    def __init__(self, app, max_bytes: int, max_upload_bytes: int):
        self.app, self.max_bytes, self.max_upload_bytes = app, max_bytes, max_upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.max_upload_bytes if multipart else self.max_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, limit)
        seen, started, exceeded = 0, False, False

        async def counted():
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def tracked(message):
            nonlocal started
            if exceeded:  # the framework answers its own way to a failed read (FastAPI: 400); say 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, limit)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send, limit: int):
        body = json.dumps({"detail": f"request body over the limit of {limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def check_query(query: str, max_chars: int, text_ids, max_tokens: int) -> tuple[str, list | None]:
    """-> (the stripped query, its token ids or None where they were not needed), or 422 when it is
    empty, too long in characters, or more tokens than the text tower reads (it would silently cut the
    rest). The ids go on to the encoder, which then does not tokenize the query again."""
    query = query.strip()
    if not query:
        raise HTTPException(422, "query must not be empty")
    if len(query) > max_chars:
        raise HTTPException(422, f"query is {len(query)} characters long; at most {max_chars}")
    if len(query.encode("utf-8")) <= max_tokens - 2:  # a token spans at least one byte: it fits, no need to count
        return query, None
    ids = text_ids(query)
    if len(ids) > max_tokens:
        raise HTTPException(422, f"query is {len(ids)} tokens long; the text encoder reads at most {max_tokens}")
    return query, ids


def decode_upload(data: bytes, max_pixels: int):
    """Uploaded bytes -> an upright RGB image of its first frame. 413 when the header claims more
    than `max_pixels` (checked before any pixel is decoded), 400 when the bytes are no image Pillow
    reads or its data is corrupt or truncated."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise HTTPException(400, "the uploaded file is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise HTTPException(413, f"image too large: at most {max_pixels} pixels") from exc
    except UnidentifiedImageError as exc:
        raise HTTPException(400, "the uploaded file is not an image format the service reads") from exc
    except Exception as exc:  # noqa: BLE001  any decoder error is the upload's fault
        raise HTTPException(400, "the uploaded image could not be read (corrupt header)") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise HTTPException(413, f"image is {width}x{height} pixels; at most {max_pixels} pixels")
    try:
        image.seek(0)  # an animation's first frame
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")
    except Exception as exc:  # noqa: BLE001  truncated data, bad chunks, bad EXIF
        raise HTTPException(400, "the uploaded image data is corrupt or truncated") from exc


def _validation_detail(exc: RequestValidationError) -> list[dict]:
    """Where and what, without the offending input (it may be huge, or NaN, which JSON cannot carry)."""
    return [{"loc": [str(p)[:64] for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]}
            for e in exc.errors()[:10]]


def install_error_handlers(app: FastAPI) -> None:
    """Refusals as 4xx JSON; a Pillow decompression-bomb warning becomes an error in this process."""
    from PIL import Image

    warnings.simplefilter("error", Image.DecompressionBombWarning)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        rid = uuid.uuid4().hex[:12]
        log.error("request %s %s failed (request id %s)", request.method, request.url.path[:200], rid,
                  exc_info=exc)
        return JSONResponse({"detail": "internal error", "request_id": rid}, status_code=500)
