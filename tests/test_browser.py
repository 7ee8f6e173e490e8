"""Browser test of the built book: every page works offline in headless Chromium.

Run with ``make browser-test`` after ``make book``. Debian's Chromium is driven
through Playwright with ``executable_path`` (Playwright's own browser download
fails offline). Every request that is not to the local test server is aborted,
so a page that needs the internet fails here.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
from book_toc import chapters
from bs4 import BeautifulSoup

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# Generated index pages carry no content of ours; everything else is checked.
SKIP = {"genindex.html", "py-modindex.html", "search.html"}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _is_redirect(path: Path) -> bool:
    return 'http-equiv="refresh"' in path.read_text(errors="ignore")[:2000].lower()


def _pages() -> list[str]:
    if not HTML.is_dir():
        return []
    return sorted(
        p.relative_to(HTML).as_posix()
        for p in HTML.rglob("*.html")
        if not p.relative_to(HTML).parts[0].startswith("_")
        and p.name not in SKIP
        and not _is_redirect(p)
    )


PAGES = _pages()


@pytest.fixture(scope="session")
def server():
    if not HTML.is_dir():
        pytest.fail(f"no built book at {HTML}: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context()
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith(server):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()
    pg.errors = []
    pg.blocked = blocked
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def test_index_redirects_to_the_introduction(page, server):
    page.goto(server, wait_until="load")
    page.wait_for_url("**/book/intro.html", timeout=30_000)
    assert page.title().startswith("Introduction")


def test_book_has_pages():
    assert "book/intro.html" in PAGES, f"pages found: {PAGES}"
    assert "book/api.html" in PAGES
    # Part IV: the decision guide (a notebook) and the glossary (plain MyST).
    assert {"book/guide.html", "book/glossary.html"} <= set(PAGES)


@pytest.mark.parametrize("path", PAGES)
def test_page_works_offline(page, server, path):
    page.goto(urljoin(server, path), wait_until="load")
    # MathJax typesets asynchronously; wait until it says it is done.
    page.wait_for_function(
        "() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise"
        " && (window.MathJax.startup.promise.then(() => window.__mj = true), window.__mj))",
        timeout=30_000,
    )

    assert not page.blocked, f"{path} tried to load from the internet: {page.blocked}"
    assert not page.errors, f"{path}: console errors {page.errors}"

    math = page.eval_on_selector_all(
        ".math", "els => els.map(e => e.querySelector('mjx-container') !== null)"
    )
    assert all(math), f"{path}: {math.count(False)} of {len(math)} math elements not typeset"
    text = page.inner_text("main")
    assert "$$" not in text and "\\(" not in text, f"{path}: raw TeX left in the page"

    broken = page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert not broken, f"{path}: images that did not load: {broken}"


@functools.cache
def _ids(page: Path) -> frozenset[str]:
    soup = BeautifulSoup(page.read_text(), "html.parser")
    return frozenset(tag["id"] for tag in soup.find_all(id=True))


def _target_exists(source: Path, href: str) -> tuple[bool, str]:
    parsed = urlparse(href)
    target = (source.parent / unquote(parsed.path)).resolve() if parsed.path else source
    if not target.exists():
        return False, f"missing file {target}"
    if parsed.fragment and target.suffix == ".html" and parsed.fragment not in _ids(target):
        return False, f"no id {parsed.fragment!r} in {target.name}"
    return True, ""


@pytest.mark.parametrize("path", PAGES)
def test_internal_links_resolve(path):
    source = HTML / path
    soup = BeautifulSoup(source.read_text(), "html.parser")
    problems = []
    for a in soup.find_all("a", href=True):
        href = a["href"]
        if urlparse(href).scheme or href.startswith(("mailto:", "javascript:")):
            continue
        ok, why = _target_exists(source, href)
        if not ok:
            problems.append(f"{href}: {why}")
    assert not problems, f"{path}: broken internal links {problems}"


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_offers_its_notebook(chapter):
    page = HTML / f"{chapter}.html"
    soup = BeautifulSoup(page.read_text(), "html.parser")
    links = [a["href"] for a in soup.find_all("a", href=True) if a["href"].endswith(".ipynb")]
    assert links, f"{chapter} offers no .ipynb download"
    ok, why = _target_exists(page, links[0])
    assert ok, why


def test_search_finds_a_chapter_word(page, server):
    page.goto(urljoin(server, "search.html?q=pooling"), wait_until="load")
    page.wait_for_selector("#search-results li", timeout=30_000)
    hits = page.eval_on_selector_all("#search-results li a", "as => as.map(a => a.href)")
    assert any("intro" in h for h in hits), f"search for 'pooling' found {hits}"
    assert not page.blocked, page.blocked
