"""The execution cache must never serve stale results.

myst-nb's cache hashes only the cells' source, so a change to the package the
chapters import would leave old numbers in the book. ``book/_ext/mlmci_book.py``
fingerprints the chapters' inputs; these tests build a one-page book twice and
show that changing the imported code re-executes the page, while an unchanged
rebuild is served from the cache. The same extension records each executed
cell's time (``_build/cell_timings.json``) without changing the cache key.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import mlmci_book  # noqa: E402

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

```{code-cell} ipython3
:tags: [hide-input]
import time

time.sleep(0.3)
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


def _cells(root: Path) -> list[tuple]:
    rows = json.loads((root / "_build" / "cell_timings.json").read_text())
    return [(r["chapter"], r["cell"], r["line"], r["source"], r["executed_now"]) for r in rows]


def _seconds(root: Path) -> list[float]:
    rows = json.loads((root / "_build" / "cell_timings.json").read_text())
    return [r["seconds"] for r in rows]


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
    # Cell indices count the Markdown cells; lines are those of the code-cell fences.
    assert _cells(book) == [
        ("page", 1, 14, "from helper_pkg.value import VALUE", True),
        ("page", 2, 19, "import time", True),
    ]
    fast, slow = _seconds(book)
    assert 0 <= fast < slow and slow >= 0.3


@pytest.mark.slow
def test_unchanged_rebuild_is_served_from_the_cache(book):
    _build(book)
    fresh = _seconds(book)
    # Re-read the page: its outputs (and its cell timings) come from the cache.
    (book / "page.md").touch()
    _build(book)
    timings = json.loads((book / "_build" / "timings.json").read_text())
    assert [t["executed_now"] for t in timings] == [False]
    assert [c[-1] for c in _cells(book)] == [False, False]
    assert _seconds(book) == fresh
    # The timestamps nbclient recorded are not left in the cells (the cache key hashes them).
    (cached,) = (book / "_build" / ".jupyter_cache" / "executed").glob("*/base.ipynb")
    assert all("execution" not in c.metadata for c in nbformat.read(cached, as_version=4).cells)


def test_cell_timing_restores_metadata_the_source_had():
    """Only the timestamps nbclient adds are removed; a cell's own metadata stays."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("x = 1", metadata={"execution": {"mine": "kept"}}),
        nbformat.v4.new_code_cell("y = 2\nz = 3"),
    ]
    nb.metadata["source_map"] = [1, 5, 9]
    stamps = {
        "iopub.execute_input": "2026-01-01T00:00:00.000000Z",
        "shell.execute_reply": "2026-01-01T00:00:02.500000Z",
    }

    def execute(nb, **kwargs):
        assert kwargs["record_timing"] is True
        for cell in nb.cells[1:]:
            cell.metadata["execution"] = dict(stamps)
        return "result"

    assert mlmci_book.timed_execution(execute)(nb, cwd=None) == "result"
    assert nb.cells[1].metadata == {"execution": {"mine": "kept"}}
    assert nb.cells[2].metadata == {}
    assert mlmci_book._PENDING == [
        {"cell": 1, "line": 5, "source": "x = 1", "seconds": 2.5},
        {"cell": 2, "line": 9, "source": "y = 2", "seconds": 2.5},
    ]
    mlmci_book._PENDING.clear()


@pytest.mark.slow
def test_without_the_guard_the_cache_is_stale(tmp_path):
    """The pitfall the guard exists for: plain myst-nb shows the old value."""
    _make_book(tmp_path, guard=False)
    _build(tmp_path)
    (tmp_path / "helper_pkg" / "value.py").write_text("VALUE = 2\n")
    # Force Sphinx to re-read the page; only the cell outputs come from the cache.
    (tmp_path / "page.md").touch()
    assert "VALUE=1" in _build(tmp_path)
