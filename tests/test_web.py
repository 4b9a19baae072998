"""The web page at `/`, in a real headless browser: Debian's chromium driven by Playwright.

Needs /usr/bin/chromium (apt-get install -y chromium); Playwright's own browsers are not used.
"""

from __future__ import annotations

import base64
import os
from contextlib import contextmanager

import pytest
from playwright.sync_api import sync_playwright

from conftest import FIXTURES
from test_server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = "/tmp/fst_web.png"
PHOTO = FIXTURES / "chenonceau_castle.jpg"  # 320 x 172

# Mean absolute difference (0..255) between two <img> elements, drawn at the second one's size.
PIXEL_DIFF_JS = """([a, b]) => {
  const A = document.querySelector(a), B = document.querySelector(b);
  const w = B.naturalWidth, h = B.naturalHeight;
  const read = (img) => {
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    const ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0, w, h);
    return ctx.getImageData(0, 0, w, h).data;
  };
  const pa = read(A), pb = read(B);
  let sum = 0, n = 0;
  for (let i = 0; i < pa.length; i += 4) {
    for (let k = 0; k < 3; k++) { sum += Math.abs(pa[i + k] - pb[i + k]); n++; }
  }
  return sum / n;
}"""


@pytest.fixture(scope="module")
def server():
    s = ServerProcess("--workers", "2", "--queue", "4")
    yield s
    s.stop()


@contextmanager
def browser_page(url: str):
    """A headless Chromium page at `url`; its `errors` collects script errors and CSP violations."""
    assert os.path.isfile(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Console errors too: a Content-Security-Policy violation is reported only there.
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Security Policy" in m.text else None)
        page.goto(url)
        page.errors = errors
        yield page
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server.url + "/") as page:
        yield page


DISPLAY_JS = "(id) => getComputedStyle(document.getElementById(id)).display"


def visible_placeholder(page, frame: str) -> bool:
    return page.evaluate(f"() => getComputedStyle(document.querySelector('#{frame} .placeholder')).display") != "none"


def test_the_empty_page_shows_placeholders_not_broken_images(page):
    # `.frame img {display: block}` used to beat the `hidden` attribute: two broken-image icons.
    for img, frame in [("original", "original-frame"), ("result", "result-frame")]:
        assert page.evaluate(DISPLAY_JS, img) == "none", img
        assert visible_placeholder(page, frame), frame
    assert page.errors == []


def test_page_lists_the_styles_with_their_paintings(page):
    page.wait_for_selector(".style-card[data-model='starry_night']")
    card = page.locator(".style-card[data-model='starry_night']")
    assert card.get_attribute("aria-checked") == "true"  # the server's default is preselected
    assert "The Starry Night" in card.inner_text()
    page.wait_for_function("() => { const i = document.querySelector(\".style-card[data-model='starry_night'] img\");"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert page.locator("#stylize").is_disabled()  # no photo yet
    assert page.errors == []


def test_upload_stylize_and_download(page, server):
    page.wait_for_selector(".style-card")
    page.set_input_files("#file-input", str(PHOTO))
    page.wait_for_function("() => { const i = document.getElementById('original');"
                           " return !i.hidden && i.complete && i.naturalWidth === 320; }")
    page.click(".style-card[data-model='starry_night']")
    assert page.locator("#stylize").is_enabled()
    page.click("#stylize")
    page.wait_for_function("() => { const i = document.getElementById('result');"
                           " return !i.hidden && i.complete && i.naturalWidth > 0; }", timeout=60_000)
    size = page.evaluate("() => [document.getElementById('result').naturalWidth, document.getElementById('result').naturalHeight]")
    assert size == [320, 172]
    diff = page.evaluate(PIXEL_DIFF_JS, ["#original", "#result"])
    assert diff > 10, f"the result looks like the original (mean |diff| {diff:.1f})"
    assert "Done" in page.inner_text("#status")
    assert "320 × 172" in page.inner_text("#result-info")

    link = page.locator("#download")
    assert link.is_visible()
    assert link.get_attribute("download") == "chenonceau_castle_starry_night.jpg"
    with page.expect_download() as info:
        link.click()
    saved = info.value.path()
    with open(saved, "rb") as f:
        assert f.read(3) == b"\xff\xd8\xff"  # a JPEG
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert os.path.getsize(SCREENSHOT) > 10_000

    # Strength 0 (the slider re-runs the request): the result is the original again.
    page.eval_on_selector("#strength", "(el) => { el.value = 0; el.dispatchEvent(new Event('input'));"
                                       " el.dispatchEvent(new Event('change')); }")
    assert page.inner_text("#strength-value") == "0%"
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Done')"
                           " && document.querySelector('#result-frame .busy').hidden", timeout=60_000)
    page.wait_for_function(f"() => ({PIXEL_DIFF_JS})(['#original', '#result']) < 4", timeout=60_000)
    assert page.errors == []


def test_dropping_a_file_and_a_server_error_is_shown(page):
    page.wait_for_selector(".style-card")
    # A "photo" that is not an image, dropped onto the drop zone: the server's 415 is shown.
    garbage = base64.b64encode(b"definitely not an image").decode()
    page.evaluate(
        """(b64) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const dt = new DataTransfer();
             dt.items.add(new File([bytes], 'fake.png', { type: 'image/png' }));
             document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
           }""",
        garbage,
    )
    assert page.inner_text("#file-name") == "fake.png"
    page.click("#stylize")
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=30_000)
    assert "not an image" in page.inner_text("#status")
    assert page.locator("#stylize").is_enabled()
    # The castle's result from the test before is gone: nothing beside the new "photo", and
    # the photo itself (not displayable) shows the placeholder, not a broken-image icon.
    assert page.evaluate(DISPLAY_JS, "result") == "none" and visible_placeholder(page, "result-frame")
    assert page.evaluate(DISPLAY_JS, "original") == "none" and visible_placeholder(page, "original-frame")
    assert not page.locator("#download").is_visible()
    assert page.inner_text("#result-info") == ""


def test_a_failed_request_clears_the_previous_result(page, server):
    page.set_input_files("#file-input", str(FIXTURES / "kitten.jpg"))  # another file: `change` fires
    page.wait_for_function("() => document.getElementById('original').naturalHeight === 240")
    page.click("#stylize")
    page.wait_for_function("() => { const i = document.getElementById('result');"
                           " return !i.hidden && i.complete && i.naturalWidth > 0; }", timeout=60_000)
    assert page.evaluate(DISPLAY_JS, "result") != "none"
    # The next request fails (the server answers 422 for this size): the old result must not stay.
    page.evaluate("() => { const s = document.getElementById('max-size'); s.add(new Option('5 px', '5')); s.value = '5'; }")
    page.click("#stylize")
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=30_000)
    assert "max_size" in page.inner_text("#status")
    assert page.evaluate(DISPLAY_JS, "result") == "none" and not page.locator("#download").is_visible()
    assert page.errors == []
