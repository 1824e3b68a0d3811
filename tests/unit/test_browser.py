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

from service_world import serve_world

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
