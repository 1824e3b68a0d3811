"""Hostile requests against a real uvicorn process over a real socket: every one gets a 4xx with a
short message that names no server path, stack or object; the process stays up and its memory
comes back to within 10% of its warm level."""
from __future__ import annotations

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from service_world import serve_world

ROOT = Path(__file__).resolve().parents[2]
LEAKS = ("Traceback", "object at 0x", "/tmp", str(ROOT), "site-packages", "File \"")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_world(tmp_path_factory.mktemp("hostile")) as (url, pid):
        yield url, pid


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _png(size=(24, 24), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny (truncated) IDAT: a bomb by header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _bomb_png() -> bytes:
    """A real 20000 x 20000 PNG (bilevel, so it is small to make and to send)."""
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")
    return buf.getvalue()


def _gif_claiming(width: int, height: int) -> bytes:
    """A tiny real GIF whose logical screen says width x height."""
    buf = io.BytesIO()
    Image.new("P", (8, 8)).save(buf, format="GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def _corrupt_chunk_png() -> bytes:
    data = bytearray(_png((64, 64)))
    at = data.index(b"IDAT") + 8
    data[at:at + 6] = b"\xff" * 6  # compressed pixels garbled, CRC left stale
    return bytes(data)


def _animated_gif() -> bytes:
    buf = io.BytesIO()
    frames = [Image.new("RGB", (32, 32), c) for c in ((200, 30, 30), (30, 30, 200))]
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    return buf.getvalue()


def _rotated_jpeg() -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 on display
    Image.new("RGB", (40, 20), (30, 180, 40)).save(buf, format="JPEG", exif=exif)
    return buf.getvalue()


def _upload(name: str, data: bytes, **form) -> dict:
    return {"files": {"file": (name, data, "application/octet-stream")}, "data": form}


HOSTILE = [  # (label, method, path, request kwargs, expected status)
    ("bomb png 20000x20000", "POST", "/search/image", lambda: _upload("b.png", _bomb_png()), 413),
    ("png header: 89 Mpx", "POST", "/search/image", lambda: _upload("b.png", _png_header_only(9500, 9400)), 413),
    ("gif header: 65535^2", "POST", "/search/image", lambda: _upload("g.gif", _gif_claiming(65535, 65535)), 413),
    ("png with a corrupt chunk", "POST", "/search/image", lambda: _upload("c.png", _corrupt_chunk_png()), 400),
    ("truncated png", "POST", "/search/image", lambda: _upload("t.png", _png((64, 64))[:60]), 400),
    ("empty upload", "POST", "/search/image", lambda: _upload("e.png", b""), 400),
    ("text as image", "POST", "/search/image", lambda: _upload("x.png", b"hello, not an image"), 400),
    ("upload over 10 MB", "POST", "/search/image", lambda: _upload("big.png", b"\0" * 10_500_000), 413),
    ("upload with k NaN", "POST", "/search/image", lambda: _upload("k.png", _png(), k="NaN"), 422),
    ("upload with unknown type", "POST", "/search/image", lambda: _upload("u.png", _png(), product_type="sofa"), 422),
    ("upload missing file", "POST", "/search/image", lambda: {"data": {"k": "3"}}, 422),
    ("k as JSON NaN", "POST", "/search", lambda: {"content": b'{"query": "red", "k": NaN}',
                                                "headers": {"content-type": "application/json"}}, 422),
    ("k as Infinity", "POST", "/search", lambda: {"content": b'{"query": "red", "k": Infinity}',
                                                 "headers": {"content-type": "application/json"}}, 422),
    ("k over 100", "POST", "/search", lambda: {"json": {"query": "red", "k": 101}}, 422),
    ("k as text", "POST", "/search", lambda: {"json": {"query": "red", "k": "many"}}, 422),
    ("empty query", "POST", "/search", lambda: {"json": {"query": ""}}, 422),
    ("query as number", "POST", "/search", lambda: {"json": {"query": 5}}, 422),
    ("query as list", "POST", "/search", lambda: {"json": {"query": ["red"]}}, 422),
    ("query of 5000 characters", "POST", "/search", lambda: {"json": {"query": "a" * 5000}}, 422),
    ("query of 200 words", "POST", "/search", lambda: {"json": {"query": " ".join(["red"] * 200)}}, 422),
    ("10 MB query", "POST", "/search", lambda: {"json": {"query": "a" * 10_000_000}}, 413),
    ("chunked 1 MB body", "POST", "/search", lambda: {"content": iter([b'{"query": "' + b"a" * 1_000_000, b'"}']),
                                                      "headers": {"content-type": "application/json"}}, 413),
    ("1 MB product_type", "POST", "/search", lambda: {"json": {"query": "red", "product_type": "x" * 1_000_000}}, 413),
    ("10 kB product_type", "POST", "/search", lambda: {"json": {"query": "red", "product_type": "x" * 10_000}}, 422),
    ("unknown product_type", "POST", "/search", lambda: {"json": {"query": "red", "product_type": "sofa"}}, 422),
    ("malformed JSON", "POST", "/search", lambda: {"content": b'{"query": "red",', "headers":
                                                   {"content-type": "application/json"}}, 422),
    ("JSON array body", "POST", "/search", lambda: {"json": ["red"]}, 422),
    ("no body", "POST", "/search", lambda: {}, 422),
    ("traversal in image id", "GET", "/images/..%2F..%2F..%2Fetc%2Fpasswd", lambda: {}, 404),
    ("traversal in similar id", "GET", "/products/..%2F..%2Fetc%2Fpasswd/similar", lambda: {}, 404),
    ("unknown id, 10 kB", "GET", "/products/" + "z" * 10_000 + "/similar", lambda: {}, 404),
    ("similar k NaN", "GET", "/products/dress-red-0/similar?k=NaN", lambda: {}, 422),
    ("similar k negative", "GET", "/products/dress-red-0/similar?k=-3", lambda: {}, 422),
    ("unknown route", "GET", "/admin/../etc/passwd", lambda: {}, 404),
    ("wrong method", "DELETE", "/search", lambda: {}, 405),
]


def _check_body(res: httpx.Response) -> None:
    text = res.text
    assert len(text) < 2000, text[:300]
    assert not any(leak in text for leak in LEAKS), text
    assert isinstance(res.json()["detail"], (str, list))


def test_hostile_requests_get_4xx_and_memory_returns(server):
    url, pid = server
    with httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(20):  # warm: every route once, images decoded, allocator settled
            c.post("/search", json={"query": "red dress"})
            c.post("/search/image", **_upload("w.png", _png((160, 160))))
            c.get("/products/dress-red-0/similar")
        warm = _rss_mb(pid)
        for label, method, path, kwargs, status in HOSTILE:
            res = c.request(method, path, **kwargs())
            assert res.status_code == status, (label, res.status_code, res.text[:300])
            _check_body(res)
        with ThreadPoolExecutor(8) as pool:  # eight bombs at once: refused from the header, nothing decoded
            bomb = _bomb_png()
            codes = list(pool.map(lambda _: c.post("/search/image", **_upload("b.png", bomb)).status_code, range(8)))
        assert codes == [413] * 8
        after = _rss_mb(pid)
        assert c.get("/healthz").status_code == 200
        assert after <= warm * 1.10, f"RSS {warm:.0f} MB warm, {after:.0f} MB after the hostile suite"


def test_odd_but_valid_requests_are_answered(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as c:
        assert c.head("/healthz").status_code == 200
        upper = c.post("/search", json={"query": "red", "product_type": " DRESS "})
        assert upper.status_code == 200 and {r["product_type"] for r in upper.json()["results"]} == {"dress"}
        animated = c.post("/search/image", **_upload("a.gif", _animated_gif(), product_type="dress"))
        assert animated.status_code == 200  # first frame: red
        assert animated.json()["results"][0]["product_id"].startswith("dress-red")
        rotated = c.post("/search/image", **_upload("r.jpg", _rotated_jpeg()))
        assert rotated.status_code == 200 and "-green-" in rotated.json()["results"][0]["product_id"]
        missing = c.get("/images/dress-blue-1")
        assert missing.status_code == 200 and missing.headers["x-model-version"] == "7"


def test_a_short_query_of_many_byte_characters_is_counted_in_tokens():
    """60 characters fit a 77-token context only if each is one token; byte-level BPE gives an emoji
    up to four, so the query must be counted, and refused."""
    from fastapi import HTTPException

    from serving.limits import check_query

    by_bytes = lambda q: [0] * (len(q.encode("utf-8")) + 2)  # noqa: E731  a byte-level tokenizer's worst case
    assert check_query("red shoe", 1000, by_bytes, 77) == ("red shoe", None)
    by_words = lambda q: q.split()  # noqa: E731
    assert check_query("red shoe " * 10, 1000, by_words, 77)[1] == ["red", "shoe"] * 10  # counted: its ids go on
    with pytest.raises(HTTPException) as refused:
        check_query("\U0001F45F" * 60, 1000, by_bytes, 77)
    assert refused.value.status_code == 422 and "242 tokens" in refused.value.detail
