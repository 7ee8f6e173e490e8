"""The chapters listed in _toc.yml, for the chapter and browser tests."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _files(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["file"]] if "file" in node else []
        return own + [f for value in node.values() for f in _files(value)]
    if isinstance(node, list):
        return [f for item in node for f in _files(item)]
    return []


def chapters() -> list[str]:
    """Docnames (e.g. ``book/intro``) of the executable chapters, in book order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    names = [toc["root"], *_files(toc.get("parts", toc.get("chapters", [])))]
    return [
        name
        for name in names
        if (ROOT / f"{name}.md").exists()
        and "kernelspec:" in (ROOT / f"{name}.md").read_text()[:600]
    ]
