"""Sphinx glue that makes the executed book honest, quiet and offline.

Loaded by ``_config.yml`` (``sphinx.local_extensions``). It does four things
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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib import resources
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

logger = logging.getLogger(__name__)

STAMP_NAME = "mlmci-fingerprint.txt"
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


def report_timings(app: Sphinx, exception: Exception | None) -> None:
    """Print and save each chapter's execution time; flag chapters over budget."""
    if exception is not None:
        return
    from myst_nb.sphinx_ import NbMetadataCollector

    budget = float(app.config.mlmci_chapter_budget)
    rows = []
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
        origin = "executed" if fresh else "from cache"
        flag = f"  OVER BUDGET ({budget:g} s per chapter, DESIGN.md)" if over else ""
        logger.info(f"mlmci_book: {docname}: {runtime:6.1f} s ({origin}){flag}")
    target = Path(app.outdir).parent / "timings.json"
    target.write_text(json.dumps(rows, indent=2) + "\n")


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
    app.connect("html-page-context", offer_notebook)
    app.connect("html-page-context", drop_thebe)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", report_timings)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
