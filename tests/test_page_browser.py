"""The web page in a real headless Chromium (Debian's), driven by Playwright.

Skipped, with the reason, only where no Chromium can be found or Playwright is missing.
"""

import os
import re
import shutil
from pathlib import Path

import pytest

import scriptrnn
from scriptrnn.server import create_app

from .conftest import live_server

CHROMIUM = os.environ.get("SCRIPTRNN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT_DIR = Path(os.environ.get("SCRIPTRNN_SCREENSHOTS", Path(__file__).parent / ".." / "test-artifacts"))

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")


# A prime a hostile user (or a model trained on hostile text) could send: the page must show it as text.
PAYLOAD = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
# The flags keep Chromium off the network: this machine has none, and users' privacy matters.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    from .conftest import make_run

    hostile = scriptrnn.load(make_run(tmp_path_factory.mktemp("page") / "hostile", extra_text=PAYLOAD))
    with live_server(create_app({"shakespeare-char": scriptrnn.load(), "hostile": hostile})) as url:
        yield url + "/"


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        blocked = []  # the Content-Security-Policy refusing something the page itself does would show here
        page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
        yield page, blocked
        browser.close()


def wait_until_done(page) -> None:
    # Locators, not wait_for_function: that evaluates a string in the page, which its CSP forbids.
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_text(re.compile("^done"), timeout=30000)


def test_page_streams_a_scene(page_url, browser_page):
    page, blocked = browser_page
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(page_url) else None)
    page.goto(page_url)
    page.wait_for_selector("#speaker option:nth-child(2)", state="attached")
    page.select_option("#speaker", "HAMLET")
    # The temperature field is empty (the server's default applies) and shows that default.
    default = scriptrnn.SamplingConfig.temperature
    page.wait_for_selector(f"#temperature[placeholder='{default}']", state="attached")
    page.fill("#max_tokens", "300")
    page.fill("#seed", "5")
    page.click("#generate")
    page.wait_for_selector("#script .speaker")
    wait_until_done(page)
    assert page.inner_text("#script .speaker").strip().upper() == "HAMLET"
    assert len(page.inner_text("#script")) > 200
    assert page.is_enabled("#copy") and page.is_enabled("#download")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "page.png"), full_page=True)
    assert outside == []  # nothing fetched from anywhere but the app itself
    assert blocked == []  # the page works within its own CSP


def test_page_writes_hostile_text_as_text(page_url, browser_page):
    page, blocked = browser_page
    page.goto(page_url)
    page.wait_for_selector("#model option:nth-child(2)", state="attached")
    page.select_option("#model", "hostile")
    page.fill("#prime", PAYLOAD)
    page.fill("#max_tokens", "200")
    page.fill("#seed", "1")
    page.click("#generate")
    wait_until_done(page)
    assert PAYLOAD in page.inner_text("#script")  # shown, character for character
    assert page.evaluate("window.__xss") is None  # and never run
    assert page.locator("#script img, #script script").count() == 0


def test_page_shows_the_texts_own_case_and_its_headings(page_url, browser_page):
    """As the terminal shows it: a lower-case speaker stays lower case; headings are set apart as in Fountain."""
    page, _ = browser_page
    page.goto(page_url)
    page.wait_for_selector("#model option:nth-child(2)", state="attached")
    page.select_option("#model", "hostile")  # a model whose speakers are written in lower case
    page.wait_for_selector("#speaker option[value='jerry']", state="attached")
    page.select_option("#speaker", "jerry")
    page.fill("#max_tokens", "60")
    page.fill("#seed", "2")
    page.click("#generate")
    wait_until_done(page)
    assert page.locator("#script .speaker").first.inner_text().strip() == "jerry"  # innerText applies CSS case
    page.select_option("#model", "shakespeare-char")
    page.fill("#prime", "[SCENE II. A room.]\n\nHAMLET: (aside) Words,")
    page.click("#generate")
    wait_until_done(page)
    assert page.locator("#script .heading").first.inner_text() == "[SCENE II. A room.]"
    assert page.locator("#script .line.after-gap .speaker").first.inner_text().strip() == "HAMLET"
    assert page.locator("#script .parenthetical").first.inner_text() == "(aside)"
