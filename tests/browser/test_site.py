"""The built site in a real browser (headless Chromium), as it is used: served from 127.0.0.1, and opened from disk
(file://, what the README promises), with every other request blocked.

Run by `make book-test` after `scripts/book.py execute` and `python -m scripts.site`; `make unit` leaves it out (it needs the built site and
Debian's `chromium`). Fails if a page asks for a non-local URL, shows raw `$...$` math, has an image that did
not load, logs a JavaScript error, or cuts a text output off on the right; clicks next/previous, runs one search
(with excerpts), downloads the notebooks' zips and reads the reproduction page's summary. Screenshots:
_build/screenshots/.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("CL_BOOK_BUILD", ROOT / "_build"))
SITE = BUILD / "html"
RAW_MATH = re.compile(r"\$\$|\$[^$\s][^$\n]{0,200}?\$|\\\(|\\\[|\\begin\{")
VISIBLE_TEXT = """() => {
  const root = (document.querySelector('article') || document.body).cloneNode(true);
  root.querySelectorAll('pre, code, script, style, mjx-container, .MathJax, .highlight, .output').forEach(e => e.remove());
  return root.textContent;
}"""
BROKEN_IMAGES = "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"


def chromium() -> str:
    path = os.environ.get("CL_BOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("No Chromium found: install Debian's `chromium` package (apt-get install chromium) "
                    "or point CL_BOOK_CHROMIUM at a Chromium binary.")
    return path


@pytest.fixture(scope="module", params=["http", "file"])
def server(request):
    """The site's base URL: a loopback server, or the folder itself (file://)."""
    if not (SITE / "index.html").exists():
        pytest.fail(f"No built site at {SITE}: run `make book` (scripts/book.py execute, then python -m scripts.site) first.")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    if request.param == "file":
        yield SITE.resolve().as_uri()
        return
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(SITE)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        log = {"external": [], "errors": []}

        def route(r):
            if r.request.url.startswith((server, "data:", "blob:", "about:")):
                r.continue_()
            else:
                log["external"].append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: m.type == "error" and log["errors"].append(f"console: {m.text}"))
        page.on("pageerror", lambda e: log["errors"].append(f"pageerror: {e}"))
        yield page, log
        browser.close()


def pages() -> list[str]:
    names = sorted(p.name for p in SITE.glob("*.html") if p.name not in ("genindex.html", "search.html"))
    return names


def test_every_page_offline_with_math_and_images(server, browser_page):
    page, log = browser_page
    problems = []
    for name in pages():
        log["external"].clear(), log["errors"].clear()
        page.goto(f"{server}/{name}", wait_until="networkidle")
        page.wait_for_timeout(300)  # MathJax typesets after load
        raw = RAW_MATH.findall(page.evaluate(VISIBLE_TEXT))
        broken = page.evaluate(BROKEN_IMAGES)
        problems += [f"{name}: requested {u}" for u in log["external"]]
        problems += [f"{name}: {e}" for e in log["errors"]]
        problems += [f"{name}: raw math {r!r}" for r in raw[:3]]
        problems += [f"{name}: image did not load: {b}" for b in broken]
    assert pages(), "the site has no pages"
    assert not problems, "\n".join(problems)


def test_chapter_pages_show_rendered_math_and_figures(server, browser_page):
    page, _ = browser_page
    page.goto(f"{server}/00_setting.html", wait_until="networkidle")
    page.wait_for_timeout(300)
    assert page.locator("mjx-container").count() > 0, "no MathJax-rendered math on chapter 00"
    assert page.locator("article img").count() > 0, "no figures on chapter 00"
    linked = page.locator("article a.full-size img")
    assert linked.count() == page.locator("article div.cell_output img").count() > 0, "figures not linked full size"
    href = linked.first.evaluate("img => img.closest('a').href")
    assert href.endswith(".png") and href == linked.first.evaluate("img => img.src")
    shots = BUILD / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "chapter_00.png"), full_page=False)
    page.goto(f"{server}/index.html", wait_until="networkidle")
    page.screenshot(path=str(shots / "contents.png"), full_page=False)


def test_next_previous_and_search(server, browser_page):
    page, _ = browser_page
    page.goto(f"{server}/index.html", wait_until="networkidle")
    page.locator("a.right-next").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("00_setting.html"), page.url
    assert "setting" in page.title().lower()
    page.locator("a.right-next").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("01_pretrainers.html"), page.url
    page.locator("a.left-prev").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("00_setting.html"), page.url
    page.goto(f"{server}/search.html?q=bottleneck", wait_until="networkidle")
    page.wait_for_selector("#search-results ul.search li", timeout=20000)
    hits = page.locator("#search-results ul.search li a").all_inner_texts()
    assert any("Bottleneck" in h or "DKVB" in h or "02" in h for h in hits), hits


CUT_OFF = """() => Array.from(document.querySelectorAll('article div.cell_output pre'))
  .filter(p => p.scrollWidth > p.clientWidth + 2).map(p => p.textContent.slice(0, 80))"""


def test_no_text_output_is_cut_off(server, browser_page):
    """Text outputs wrap (the claims cells' verdicts must be readable to the right edge)."""
    page, _ = browser_page
    cut = []
    for name in pages():
        if name[:2].isdigit():
            page.goto(f"{server}/{name}", wait_until="load")
            cut += [f"{name}: {t!r}" for t in page.evaluate(CUT_OFF)]
    assert not cut, "\n".join(cut[:10])


def test_search_shows_excerpts(server, browser_page):
    page, log = browser_page
    log["errors"].clear()
    page.goto(f"{server}/search.html?q=forgetting", wait_until="networkidle")
    page.wait_for_selector("#search-results ul.search li", timeout=20000)
    page.wait_for_selector("#search-results ul.search li p.context", timeout=20000)
    excerpts = page.locator("#search-results ul.search li p.context").all_inner_texts()
    assert any("forget" in e.lower() for e in excerpts), excerpts[:3]
    assert not log["errors"], log["errors"]


def test_downloads_are_files(server, browser_page):
    """The page header's zips download (from disk too, where a browser would show a .ipynb as text)."""
    import zipfile

    page, _ = browser_page
    page.goto(f"{server}/00_setting.html", wait_until="load")
    for link, expect in (("every chapter (.zip)", "00_setting.ipynb"), ("notebook and source (.zip)", "00_setting.py")):
        with page.expect_download(timeout=20000) as dl:
            page.get_by_role("link", name=link).first.click()
        with zipfile.ZipFile(dl.value.path()) as z:
            assert expect in z.namelist(), z.namelist()


def test_reproduction_page_summary(server, browser_page):
    page, _ = browser_page
    page.goto(f"{server}/reproduction.html", wait_until="load")
    text = page.locator("article").inner_text()
    assert re.search(r"Summary: \d+ of \d+ paper claims and checks hold", text), text[:300]
    assert page.locator("span.result-holds").count() > 0


FIRST_FIGURE_AT = "() => { const i = document.querySelector('article figure img, article div.cell_output img'); " \
                  "return i ? i.getBoundingClientRect().top + window.scrollY : null; }"
# How far down a chapter page its first figure may sit (px at a 1280 × 900 window: under eight screens): the
# experiment comes into view after the goals, the idea and its math, not after pages of listings. Chapter 03's was
# at 10,592 px before cl_lib's listings and the setup cell folded, 6,679 px after (its idea section is the longest).
FIRST_FIGURE_MAX_PX = 7000


def test_figures_are_numbered_with_captions_and_come_early(server, browser_page):
    page, _ = browser_page
    late = []
    for name in pages():
        if not name[:2].isdigit():
            continue
        page.goto(f"{server}/{name}", wait_until="load")
        if "Not executed in this build" in page.locator("article").inner_text():
            continue  # the site build itself fails on a chapter it could not execute
        images = page.locator("article div.cell_output img").count()
        captions = page.locator("article figure figcaption").all_inner_texts()
        assert images and len(captions) == images, f"{name}: {images} figures, {len(captions)} captions"
        assert all(re.match(r"Fig\. \d+", c) for c in captions), f"{name}: unnumbered caption {captions[:2]}"
        top = page.evaluate(FIRST_FIGURE_AT)
        if top > FIRST_FIGURE_MAX_PX:
            late.append(f"{name}: first figure at {top:.0f} px")
    assert not late, "\n".join(late)


def test_hints_open_in_place_and_link_to_their_solutions(server, browser_page):
    page, _ = browser_page
    page.goto(f"{server}/03_ada.html", wait_until="load")
    hint = page.locator("article div.dropdown.admonition").first
    assert hint.count(), "no hint dropdowns under chapter 03's exercises"
    assert "Exercise 1: hint" in hint.inner_text()
    link = hint.locator("a", has_text=re.compile(r"^exercise 1 — "))
    assert not link.is_visible(), "the hint is open before a click"
    hint.locator(".admonition-title").click()
    link.wait_for(state="visible", timeout=5000)
    href = link.get_attribute("href")
    assert href.startswith("solutions-03_ada.html#solution-03-ada-1"), href
    link.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("#solution-03-ada-1") and page.locator("#solution-03-ada-1").count() == 1, page.url
    page.goto(f"{server}/hints.html", wait_until="load")
    text = page.locator("article").inner_text()
    assert text.count("Hint.") >= 30 and "Expected result" not in text


def test_bibliography_links_every_work(server, browser_page):
    page, _ = browser_page
    page.goto(f"{server}/bibliography.html", wait_until="load")
    entries = page.locator("article .citation, article dl.citation > dt, article div.citation")
    links = page.locator("article a[href^='https://arxiv.org/abs/']")
    assert links.count() >= 25, links.count()
    assert entries.count() >= 30 or page.locator("article dd").count() >= 30
