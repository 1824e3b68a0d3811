"""The search page in headless Chromium (Debian's `chromium`): result images render for a text query
and for a query with a type filter. Screenshots are kept in test-artifacts/ for people to look at.

CI installs chromium and sets VLCLIP_REQUIRE_BROWSER=1, so there a missing browser fails the test;
elsewhere a machine without chromium skips it with that reason."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from service_world import FELL_BACK, serve_world

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("VLCLIP_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def headless(browser: str, url: str, *extra: str) -> str:
    """Load `url`, let its scripts, fetches and image loads run, and return the DOM (or write a screenshot)."""
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--no-first-run", "--virtual-time-budget=15000", *extra, url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    browser = _chromium()
    with serve_world(tmp_path_factory.mktemp("browser")) as (url, _):
        yield browser, url


def _cards(dom: str) -> list[tuple[str, str]]:
    """(product type, data-loaded of its image) per result card."""
    return re.findall(r'<div class="card" data-type="([^"]*)"><img [^>]*data-loaded="([01])"', dom)


@pytest.mark.parametrize("name, query, n", [("text", "q=red+dress", 12),  # the page asks for 12
                                             ("type_filter", "q=blue&type=table+lamp", 8)])  # the type has 8
def test_result_images_render(page, name, query, n):
    browser, url = page
    dom = headless(browser, f"{url}/?{query}", "--dump-dom")
    cards = _cards(dom)
    assert len(cards) == n, dom[-3000:]
    assert all(loaded == "1" for _, loaded in cards), cards  # every result image decoded with a real width
    if "type=" in query:
        assert {t for t, _ in cards} == {"table lamp"}
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"search_{name}.png"
    headless(browser, f"{url}/?{query}", f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.stat().st_size > 10_000


@pytest.mark.parametrize("product, border", [("dress-red-0", (46, 125, 50)),  # the grounding crop: green
                                             (FELL_BACK, (239, 108, 0))])  # the whole image kept: orange
def test_details_show_the_crop_box_on_the_source_image_and_the_refined_query(page, product, border):
    browser, url = page
    dom = headless(browser, f"{url}/?q=red+dress&detail={product.replace(' ', '+')}", "--dump-dom")
    assert '<div id="detail">' in dom, dom[-3000:]  # shown (no hidden attribute)
    query = re.search(r'<q id="detail-query">([^<]*)</q>', dom).group(1)
    assert query == "a " + product.split("-")[1] + " dress", query
    assert re.search(r'<img id="detail-img" [^>]*data-loaded="1"', dom), dom[-3000:]
    box = re.search(r'<div id="detail-box"([^>]*)>', dom).group(1)
    assert "hidden" not in box
    want = "left: 0%; top: 0%; width: 100%; height: 100%" if product == FELL_BACK else \
        "left: 25%; top: 16.6667%; width: 50%; height: 66.6667%"  # (16, 8)-(48, 40) of 64 x 48
    assert want in box, box
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"search_details_{product.split('-')[1]}.png"
    headless(browser, f"{url}/?q=red+dress&detail={product}", f"--screenshot={shot}", "--window-size=1280,900")
    assert _share(shot, border) > 0.001  # the box is drawn in its colour (the legend alone: < 0.0002)


def _share(shot: Path, rgb: tuple[int, int, int]) -> float:
    """The share of the screenshot's pixels that have exactly this colour."""
    import numpy as np
    from PIL import Image

    with Image.open(shot) as im:
        px = np.asarray(im.convert("RGB")).reshape(-1, 3)
    return float((px == np.array(rgb)).all(axis=1).mean())


def test_validation_report_renders_offline(tmp_path):
    """The validate stage's report.html, opened from disk with the network off: its table is laid out
    and its status colours show (no style comes from a CDN)."""
    from test_validate import good_tables, write

    from validation.validate import main as validate

    browser = _chromium()
    tables = good_tables()
    tables["boxes"]["fallback"] = [i % 5 != 0 for i in range(len(tables["boxes"]))]  # one critical failure
    assert validate(write(tmp_path, tables)) == 1
    page = (tmp_path / "out" / "report.html").as_uri()
    offline = ("--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>")  # any fetch would fail
    dom = headless(browser, page, *offline, "--dump-dom")
    assert dom.count('<tr class="ok">') == 20 and dom.count('<tr class="critical">') == 1
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "validation_report.png"
    headless(browser, page, *offline, f"--screenshot={shot}", "--window-size=1280,1400")
    assert _share(shot, (232, 245, 233)) > 0.01  # the passed rows' status cells
    assert _share(shot, (255, 205, 210)) > 0.0005  # the failed one's
