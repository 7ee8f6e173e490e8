"""Chapter tests: every chapter in _toc.yml executes top to bottom.

Sampling is shortened (``MLMCI_QUICK=1``: few draws, no gate), so these tests
check that the code runs and writes nothing to stderr; the numbers in the book
come from the full execution of ``make book``.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
from book_toc import chapters
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters()


def test_toc_lists_the_introduction():
    assert "book/intro" in CHAPTERS


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_executes(chapter, monkeypatch):
    monkeypatch.setenv("MLMCI_QUICK", "1")
    monkeypatch.setenv("MLMCI_PROGRESS", "0")
    path = ROOT / f"{chapter}.md"
    notebook = jupytext.read(path)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    stderr = [
        (i, out.get("text", ""))
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
    ]
    assert not stderr, f"{chapter} wrote to stderr (the book build would fail): {stderr}"
