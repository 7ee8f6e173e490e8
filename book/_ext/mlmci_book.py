"""Sphinx glue that makes the executed book honest, quiet and offline.

Loaded by ``_config.yml`` (``sphinx.local_extensions``). It does six things
the stack does not do by itself:

1. **No stale numbers.** myst-nb's execution cache hashes only the cells'
   source, so editing ``mlmci/`` would leave old outputs in the book. We
   fingerprint the files the chapters depend on (``mlmci_cache_inputs``); when
   the fingerprint changes, the execution cache is cleared and every page is
   re-read, so every chapter executes again.
2. **No progress bars on a page.** Kernels inherit this process's environment,
   so ``MLMCI_PROGRESS=0`` switches mlmci's sampler progress off in the book
   while a reader's own runs keep it.
3. **Offline math.** MathJax is served from the book's own ``_static`` folder
   (copied from the ``django-static-mathjax`` package) instead of a CDN.
4. **Notebook downloads.** Each executed chapter is offered as ``.ipynb`` in
   the page's download menu.
5. **Timings.** After the build, each chapter's execution time is printed and
   written to ``_build/timings.json``; a chapter executed in this build that
   took longer than ``mlmci_chapter_budget`` seconds is flagged OVER BUDGET in
   the log and the file. It is not a build error: a shared CI machine's noise
   must not fail the book, but a slow chapter must be seen the day it is slow.
6. **Cell timings.** Every executed cell's time (chapter, cell index, source
   line, first source line, seconds) goes to ``_build/cell_timings.json`` and
   the slowest cells are logged. myst-nb runs nbclient through jupyter-cache
   with ``record_timing=False``; we turn it on and move the timestamps out of
   the cells before the notebook is cached, because jupyter-cache hashes all
   cell metadata (timestamps left in a cell would make the cached notebook
   never match its source again). Timings of chapters served from the cache
   come from ``mlmci-cell-timings.json`` in the cache folder, kept only while
   they belong to the same execution (same runtime) as the cached outputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

STAMP_NAME = "mlmci-fingerprint.txt"
CELL_STORE_NAME = "mlmci-cell-timings.json"
#: How many of the slowest cells the build log lists.
SLOWEST_CELLS = 10
# _config.yml sets mathjax_path to _static/mathjax/tex-chtml.js.
# What tex-chtml.js loads at run time: fonts, TeX extensions it autoloads, the menu.
MATHJAX_PARTS = ("tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y")


def fingerprint(root: Path, inputs: list[str]) -> str:
    """SHA-256 over the paths and bytes of every file under ``inputs`` (relative to root)."""
    digest = hashlib.sha256()
    for name in sorted(inputs):
        base = root / name
        if not base.exists():
            digest.update(f"missing:{name}".encode())
            continue
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _cache_dir(app: Sphinx) -> Path:
    configured = app.config.nb_execution_cache_path
    return Path(configured) if configured else Path(app.outdir).parent / ".jupyter_cache"


def invalidate_stale(
    app: Sphinx, env: BuildEnvironment, added: set, changed: set, removed: set
) -> list[str]:
    """Clear the execution cache and re-read every page when the chapters' inputs changed."""
    root = Path(app.confdir)
    current = fingerprint(root, list(app.config.mlmci_cache_inputs))
    cache = _cache_dir(app)
    stamp = cache / STAMP_NAME
    cached = stamp.read_text().strip() if stamp.exists() else None
    seen = getattr(env, "mlmci_fingerprint", None)
    outdated: list[str] = []
    if cached is not None and cached != current:
        logger.info("mlmci_book: chapter inputs changed; clearing the execution cache")
        from jupyter_cache import get_cache

        get_cache(cache).clear_cache()
    if (cached is not None and cached != current) or (seen is not None and seen != current):
        outdated = sorted(set(env.found_docs) - added - changed)
    cache.mkdir(parents=True, exist_ok=True)
    stamp.write_text(current + "\n")
    env.mlmci_fingerprint = current
    return outdated


def quiet_kernels(app: Sphinx, config) -> None:
    """Kernels started by myst-nb inherit this environment: no progress bars, full runs."""
    os.environ["MLMCI_PROGRESS"] = "0"
    os.environ.pop("MLMCI_QUICK", None)
    # An ungated posterior (or a quick-mode result) raises instead of reaching a page.
    os.environ["MLMCI_BOOK"] = "1"


def _mathjax_source() -> Path:
    return Path(str(resources.files("mathjax"))) / "static" / "mathjax" / "es5"


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy the parts of MathJax the pages load into ``_static/mathjax``."""
    if exception is not None or app.builder.format != "html":
        return
    source = _mathjax_source()
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src, dst = source / part, target / part
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def offer_notebook(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Put the executed notebook of a chapter into the page's download menu.

    sphinx-book-theme shows an ``.ipynb`` download only alongside launch buttons
    (Binder, Colab), which would send readers online; we copy the notebook
    myst-nb executed next to the page sources and tell the theme about it.
    """
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.exists() or doctree is None:
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


# Cell timings recorded while a page is parsed (myst-nb executes during parsing);
# ``collect_cell_timings`` moves them to the page's docname at ``doctree-read``.
_PENDING: list[dict[str, Any]] = []


def _seconds(execution: dict) -> float | None:
    """A cell's run time from nbclient's timestamps (execute_input to execute_reply)."""
    for start, end in (
        ("iopub.execute_input", "shell.execute_reply"),
        ("iopub.status.busy", "iopub.status.idle"),
    ):
        if start in execution and end in execution:
            delta = datetime.fromisoformat(execution[end]) - datetime.fromisoformat(
                execution[start]
            )
            return round(delta.total_seconds(), 3)
    return None


def _first_line(source: str, width: int = 80) -> str:
    """The first line of a cell that is code, not a blank line or a MyST option."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    code = [line for line in lines if not line.startswith(":") and line != "---"]
    line = (code or lines or [""])[0]
    return line if len(line) <= width else line[: width - 1] + "…"


def timed_execution(original):
    """Wrap jupyter-cache's ``single_nb_execution`` to record each cell's run time.

    nbclient writes the timestamps into ``cell.metadata.execution``; they are
    taken out again (and any metadata the source had restored) before myst-nb
    caches the notebook, so the cache key stays that of the source.
    """

    @functools.wraps(original)
    def run(nb, *args, **kwargs):
        kwargs["record_timing"] = True
        before = {
            index: cell.metadata["execution"]
            for index, cell in enumerate(nb.cells)
            if "execution" in cell.metadata
        }
        try:
            return original(nb, *args, **kwargs)
        finally:
            lines = nb.metadata.get("source_map") or []
            rows = []
            for index, cell in enumerate(nb.cells):
                execution = cell.metadata.pop("execution", None)
                if index in before:
                    cell.metadata["execution"] = before[index]
                if cell.cell_type != "code" or not isinstance(execution, dict):
                    continue
                seconds = _seconds(execution)
                if seconds is None:
                    continue
                rows.append(
                    {
                        "cell": index,
                        "line": lines[index] if index < len(lines) else None,
                        "source": _first_line(cell.source),
                        "seconds": seconds,
                    }
                )
            _PENDING[:] = rows

    run.mlmci_timed = True
    return run


def record_cell_timing() -> bool:
    """Switch nbclient's per-cell timing on inside myst-nb's cached execution."""
    try:
        from myst_nb.core.execute import cache as nb_cache
    except ImportError:
        return False
    original = getattr(nb_cache, "single_nb_execution", None)
    if original is None:
        return False
    if not getattr(original, "mlmci_timed", False):
        nb_cache.single_nb_execution = timed_execution(original)
    return True


def forget_cell_timings(app: Sphinx, docname: str, source: list[str]) -> None:
    """A page starts being read: nothing recorded so far belongs to it."""
    _PENDING.clear()


def collect_cell_timings(app: Sphinx, doctree) -> None:
    """Attach the cell timings recorded while this page was parsed to its docname."""
    cells = getattr(app.env, "mlmci_cell_timings", None)
    if cells is None:
        cells = app.env.mlmci_cell_timings = {}
    if _PENDING:
        cells[app.env.docname] = list(_PENDING)
        _PENDING.clear()
    else:
        cells.pop(app.env.docname, None)


def purge_cell_timings(app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    getattr(env, "mlmci_cell_timings", {}).pop(docname, None)


def merge_cell_timings(
    app: Sphinx, env: BuildEnvironment, docnames: set, other: BuildEnvironment
) -> None:
    """Parallel reads: bring the worker's timings into the main environment."""
    cells = getattr(env, "mlmci_cell_timings", None)
    if cells is None:
        cells = env.mlmci_cell_timings = {}
    theirs = getattr(other, "mlmci_cell_timings", {})
    cells.update({name: theirs[name] for name in docnames if name in theirs})


def _cell_rows(app: Sphinx, chapters: list[tuple[str, float, bool]]) -> list[dict]:
    """Cell timings of every chapter: fresh ones from this build, others from the cache folder.

    The cache folder keeps each chapter's cells with the runtime of that
    execution; a chapter served from the cache gets them back only when its
    cached runtime is the same, i.e. the cells belong to the outputs shown.
    """
    store_path = _cache_dir(app) / CELL_STORE_NAME
    try:
        store = json.loads(store_path.read_text())
    except (OSError, ValueError):
        store = {}
    fresh_cells = getattr(app.env, "mlmci_cell_timings", {})
    rows = []
    for docname, runtime, fresh in chapters:
        if fresh and docname in fresh_cells:
            store[docname] = {"runtime": runtime, "cells": fresh_cells[docname]}
        entry = store.get(docname)
        if not entry or abs(float(entry.get("runtime", -1)) - runtime) > 1e-6:
            store.pop(docname, None)
            continue
        rows.extend(
            {"chapter": docname, **cell, "executed_now": bool(fresh)} for cell in entry["cells"]
        )
    if store_path.parent.exists():
        store_path.write_text(json.dumps(store, indent=1) + "\n")
    return rows


def report_timings(app: Sphinx, exception: Exception | None) -> None:
    """Print and save each chapter's execution time; flag chapters over budget."""
    if exception is not None:
        return
    from myst_nb.sphinx_ import NbMetadataCollector

    budget = float(app.config.mlmci_chapter_budget)
    rows = []
    chapters = []
    for docname, data in sorted(NbMetadataCollector.get_doc_data(app.env).items()):
        exec_data = data.get("exec_data")
        if not exec_data:
            continue
        runtime = exec_data.get("runtime") or 0.0
        fresh = exec_data.get("method") != "cache" or exec_data.get("mtime", 0) >= app.mlmci_started
        over = bool(fresh and runtime > budget)
        rows.append(
            {
                "chapter": docname,
                "seconds": round(runtime, 1),
                "executed_now": bool(fresh),
                "over_budget": over,
            }
        )
        chapters.append((docname, runtime, bool(fresh)))
        origin = "executed" if fresh else "from cache"
        flag = f"  OVER BUDGET ({budget:g} s per chapter, DESIGN.md)" if over else ""
        logger.info(f"mlmci_book: {docname}: {runtime:6.1f} s ({origin}){flag}")
    target = Path(app.outdir).parent / "timings.json"
    target.write_text(json.dumps(rows, indent=2) + "\n")

    cells = sorted(_cell_rows(app, chapters), key=lambda c: (c["chapter"], c["cell"]))
    (target.parent / "cell_timings.json").write_text(json.dumps(cells, indent=2) + "\n")
    for cell in sorted(cells, key=lambda c: -c["seconds"])[:SLOWEST_CELLS]:
        origin = "" if cell["executed_now"] else " (from cache)"
        logger.info(
            f"mlmci_book: slow cell {cell['chapter']}.md:{cell['line']} "
            f"{cell['seconds']:6.1f} s{origin}  {cell['source']}"
        )


def note_glue_sources(app: Sphinx, doctree) -> None:
    """A page that quotes another page's glue is re-read when that page changes.

    myst-nb resolves ``{glue:text}`other.md::key``` at write time from the other
    page's glue data, but Sphinx does not know the dependency: after an edit of a
    quoted chapter the quoting page (the decision guide) would keep its old
    numbers until it is edited itself. Noting the chapter's source as a
    dependency makes Sphinx re-read and rewrite the quoting page too.
    """
    from myst_nb.ext.glue.utils import PendingGlueReference

    for node in doctree.findall(PendingGlueReference):
        app.env.note_dependency(str(app.env.doc2path(node.refdoc)))


def mark_start(app: Sphinx) -> None:
    import time

    app.mlmci_started = time.time()


def drop_thebe(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Remove sphinx-thebe's scripts: the book has no live-code buttons.

    Jupyter Book 1 always loads sphinx-thebe, and sphinx-thebe 0.3.1 under Sphinx 7
    adds its inline config script twice, so every page logged the console error
    "Identifier 'THEBE_JS_URL' has already been declared".
    """
    if "script_files" not in context:
        return
    context["script_files"] = [
        js
        for js in context["script_files"]
        if "THEBE_JS_URL" not in str(getattr(js, "attributes", {}).get("body", ""))
        and not str(js).endswith("sphinx-thebe.js")
    ]


def setup(app: Sphinx) -> dict:
    app.add_config_value("mlmci_cache_inputs", ["mlmci", "requirements.txt"], "env")
    app.add_config_value("mlmci_chapter_budget", 90, "")
    app.connect("builder-inited", mark_start)
    app.connect("config-inited", quiet_kernels)
    app.connect("env-get-outdated", invalidate_stale)
    if record_cell_timing():
        app.connect("source-read", forget_cell_timings)
        app.connect("doctree-read", collect_cell_timings)
        app.connect("env-purge-doc", purge_cell_timings)
        app.connect("env-merge-info", merge_cell_timings)
    app.connect("doctree-read", note_glue_sources)
    app.connect("html-page-context", offer_notebook)
    app.connect("html-page-context", drop_thebe)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", report_timings)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
