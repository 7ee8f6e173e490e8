"""The execution cache must never serve stale results.

myst-nb's cache hashes only the cells' source, so a change to the package the
chapters import would leave old numbers in the book. ``book/_ext/mlmci_book.py``
fingerprints the chapters' inputs; these tests build a one-page book twice and
show that changing the imported code re-executes the page, while an unchanged
rebuild is served from the cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"

PAGE = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Page

```{code-cell} ipython3
from helper_pkg.value import VALUE
print(f"VALUE={VALUE}")
```
"""


def _make_book(root: Path, *, guard: bool) -> None:
    (root / "helper_pkg").mkdir(parents=True)
    (root / "helper_pkg" / "__init__.py").write_text("")
    (root / "helper_pkg" / "value.py").write_text("VALUE = 1\n")
    (root / "page.md").write_text(PAGE)
    (root / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    extension = "  config: {}\n"
    if guard:
        extension = f"""\
          local_extensions:
            mlmci_book: {ROOT / "book" / "_ext"}
          config:
            mlmci_cache_inputs: [helper_pkg]
        """
    (root / "_config.yml").write_text(
        textwrap.dedent(
            """\
            title: cache test
            only_build_toc_files: true
            execute:
              execute_notebooks: cache
            sphinx:
            """
        )
        + textwrap.indent(textwrap.dedent(extension), "  ")
    )


def _build(root: Path) -> str:
    result = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(root), "--builder", "html"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return (root / "_build" / "html" / "page.html").read_text()


@pytest.fixture
def book(tmp_path):
    _make_book(tmp_path, guard=True)
    return tmp_path


@pytest.mark.slow
def test_changed_package_code_reexecutes_the_page(book):
    assert "VALUE=1" in _build(book)

    (book / "helper_pkg" / "value.py").write_text("VALUE = 2\n")
    html = _build(book)

    assert "VALUE=2" in html and "VALUE=1" not in html
    timings = json.loads((book / "_build" / "timings.json").read_text())
    assert [(t["chapter"], t["executed_now"], t["over_budget"]) for t in timings] == [
        ("page", True, False)
    ]


@pytest.mark.slow
def test_unchanged_rebuild_is_served_from_the_cache(book):
    _build(book)
    _build(book)
    timings = json.loads((book / "_build" / "timings.json").read_text())
    assert [t["executed_now"] for t in timings] == [False]


@pytest.mark.slow
def test_without_the_guard_the_cache_is_stale(tmp_path):
    """The pitfall the guard exists for: plain myst-nb shows the old value."""
    _make_book(tmp_path, guard=False)
    _build(tmp_path)
    (tmp_path / "helper_pkg" / "value.py").write_text("VALUE = 2\n")
    # Force Sphinx to re-read the page; only the cell outputs come from the cache.
    (tmp_path / "page.md").touch()
    assert "VALUE=1" in _build(tmp_path)
