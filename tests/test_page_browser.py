"""The web page in a real headless Chromium (Debian's), driven by Playwright.

Skipped, with the reason, only where no Chromium can be found or Playwright is missing.
"""

import os
import shutil
from pathlib import Path

import pytest

import scriptrnn
from scriptrnn.server import create_app

from .conftest import live_server

CHROMIUM = os.environ.get("SCRIPTRNN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT_DIR = Path(os.environ.get("SCRIPTRNN_SCREENSHOTS", Path(__file__).parent / ".." / "test-artifacts"))

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def page_url():
    with live_server(create_app({"shakespeare-char": scriptrnn.load()})) as url:
        yield url + "/"


def test_page_streams_a_scene(page_url):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    # The flags keep Chromium off the network: this machine has none, and users' privacy matters.
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        outside = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(page_url) else None)
        page.goto(page_url)
        page.wait_for_function("document.querySelectorAll('#speaker option').length > 1")
        page.select_option("#speaker", "HAMLET")
        page.fill("#max_tokens", "300")
        page.fill("#seed", "5")
        page.click("#generate")
        page.wait_for_selector("#script .speaker")
        page.wait_for_function("document.querySelector('#status').textContent.startsWith('done')", timeout=30000)
        assert page.inner_text("#script .speaker").strip().upper() == "HAMLET"
        assert len(page.inner_text("#script")) > 200
        assert page.is_enabled("#copy") and page.is_enabled("#download")
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / "page.png"), full_page=True)
        browser.close()
    assert outside == []  # nothing fetched from anywhere but the app itself
