"""The decision guide quotes the chapters; the glossary is linked from them.

``book/guide.md`` takes every number from the chapter that computed it, with
myst-nb's cross-document glue, ``{glue:text}`chapter.md::key:format```. The
reference is resolved only when the book is built (a missing key is a build
warning, an error under ``-W``); these tests catch a renamed or removed key
without a build, by reading the chapters' source:

* the referenced chapter is in ``_toc.yml`` (so the build reads and glues it);
* the chapter glues that key: a literal ``glue("key", ...)`` or an f-string
  ``glue(f"prefix_{x}_suffix", ...)`` whose fixed parts match the key (the
  chapters glue Monte Carlo cells in loops);
* where a built book is at hand (``_build/jupyter_execute``), the key is in the
  chapter's glue data as well.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest
from book_toc import chapters

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
GUIDE = BOOK / "guide.md"
GLOSSARY = BOOK / "glossary.md"
GLUE_DATA = ROOT / "_build" / "jupyter_execute" / "book"

# {glue:text}`doc.md::key:fmt`, {glue}`doc.md::key` and the directive forms.
ROLE = re.compile(r"\{glue(?::(?P<kind>\w+))?\}`(?P<body>[^`]*::[^`]*)`")
DIRECTIVE = re.compile(r"^[`:]{3,}\{glue(?::(?P<kind>\w+))?\}\s+(?P<body>\S*::\S*)", re.M)
LITERAL_GLUE = re.compile(r"""\bglue\(\s*(["'])(?P<key>[^"']+)\1""")
FSTRING_GLUE = re.compile(r"""\bglue\(\s*f(["'])(?P<key>[^"']+)\1""")


def references() -> list[tuple[str, str, str, str]]:
    """(kind, chapter file, key, format) of every cross-document glue in the guide."""
    text = GUIDE.read_text()
    found = []
    for match in [*ROLE.finditer(text), *DIRECTIVE.finditer(text)]:
        kind = match["kind"] or "any"
        doc, rest = match["body"].split("::", 1)
        key, _, fmt = rest.partition(":")
        found.append((kind, doc, key, fmt))
    return found


REFERENCES = references()


def glued_keys(chapter: Path) -> tuple[set[str], list[re.Pattern]]:
    """Keys a chapter glues: literal ones, and patterns for f-string keys."""
    source = "\n".join(
        cell.source for cell in jupytext.read(chapter).cells if cell.cell_type == "code"
    )
    literal = {m["key"] for m in LITERAL_GLUE.finditer(source)}
    patterns = []
    for m in FSTRING_GLUE.finditer(source):
        parts = re.split(r"\{[^}]*\}", m["key"])
        patterns.append(re.compile("^" + "[A-Za-z0-9_.]+".join(map(re.escape, parts)) + "$"))
    return literal, patterns


def test_the_guide_quotes_the_chapters():
    assert len(REFERENCES) >= 20
    quoted = {doc for _, doc, _, _ in REFERENCES}
    answered = {
        "fe_re_mundlak.md",
        "mlm_regression.md",
        "did.md",
        "iv.md",
        "rdd.md",
        "weighting.md",
        "heterogeneous_effects.md",
        "star.md",
    }
    assert answered <= quoted, f"no numbers quoted from {sorted(answered - quoted)}"


@pytest.mark.parametrize(
    "kind,doc,key,fmt", REFERENCES, ids=[f"{d}::{k}" for _, d, k, _ in REFERENCES]
)
def test_quoted_key_is_glued_by_its_chapter(kind, doc, key, fmt):
    # myst-nb resolves other documents' glue only for {glue} / {glue:text}
    # ({glue:md} has no cross-document form), and {glue:text} splits the format
    # off at the last colon: without one, "doc::key" would lose its key.
    assert kind in ("text", "any"), f"{{glue:{kind}}} cannot quote another document"
    assert kind != "text" or fmt, f"{doc}::{key} needs a format (e.g. ':s' or ':.2f')"
    chapter = BOOK / doc
    assert chapter.exists(), f"{doc} does not exist"
    assert f"book/{chapter.stem}" in chapters(), f"{doc} is not an executed chapter in _toc.yml"
    literal, patterns = glued_keys(chapter)
    assert key in literal or any(p.match(key) for p in patterns), (
        f"{doc} does not glue {key!r} (renamed?)"
    )


@pytest.mark.parametrize("doc", sorted({d for _, d, _, _ in REFERENCES}))
def test_quoted_keys_are_in_the_built_glue_data(doc):
    import json

    path = GLUE_DATA / f"{Path(doc).stem}.glue.json"
    if not path.exists():
        pytest.skip("no built book (_build/jupyter_execute)")
    keys = set(json.loads(path.read_text()))
    missing = sorted({k for _, d, k, _ in REFERENCES if d == doc} - keys)
    assert not missing, f"{doc} did not glue {missing} in the last build"


def test_guide_prose_types_no_numbers():
    """Numbers come from the chapters: none is typed in the guide's prose."""
    notebook = jupytext.read(GUIDE)
    prose = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    prose = re.sub(r"\{[\w:]+\}`[^`]*`", "", prose)  # roles (glue, doc, term)
    prose = re.sub(r"`[^`]*`", "", prose)  # inline code
    typed = re.findall(r"(?<![\w.])\d+\.\d+|\d+\s*%", prose)
    assert not typed, f"typed numbers in the guide: {typed}"


def test_rosetta_notes_type_no_numbers():
    """The notes under the Rosetta rows are prose on the page too."""
    import test_rosetta

    for row in test_rosetta.ROWS:
        typed = re.findall(r"(?<![\w.])\d+\.\d+|\d+\s*%|\de-\d", row["note"])
        assert not typed, f"typed numbers in the note of {row['id']!r}: {typed}"


# ------------------------------------------------------------------ glossary

TERM_ROLE = re.compile(r"\{term\}`(?:[^`<]*<(?P<target>[^>]+)>|(?P<plain>[^`]+))`")


def glossary_entries() -> list[list[str]]:
    """Each glossary entry's names (a term and its aliases)."""
    text = GLOSSARY.read_text()
    body = text.split("```{glossary}", 1)[1].split("\n```", 1)[0]
    entries, names = [], []
    for line in body.splitlines():
        if not line.strip():
            if names:
                entries.append(names)
                names = []
            continue
        if not line.startswith(" "):
            names.append(line.strip())
    if names:
        entries.append(names)
    return [e for e in entries if e]


def linked_terms(paths) -> set[str]:
    linked = set()
    for path in paths:
        for m in TERM_ROLE.finditer(path.read_text()):
            linked.add(" ".join((m["target"] or m["plain"]).split()).lower())
    return linked


def test_glossary_has_the_contested_terms():
    names = {n.lower() for entry in glossary_entries() for n in entry}
    for term in [
        "fixed effect",
        "random effect",
        "multilevel model",
        "hierarchical model",
        "mixed model",
        "complete pooling",
        "no pooling",
        "partial pooling",
        "shrinkage",
        "cate",
        "ate",
        "att",
        "late",
        "within effect",
        "between effect",
        "contextual effect",
        "mundlak",
        "empirical bayes",
        "icc",
    ]:
        assert term in names, term


def test_every_term_role_resolves_to_a_glossary_entry():
    names = {n.lower() for entry in glossary_entries() for n in entry}
    pages = [BOOK / f"{Path(c).name}.md" for c in chapters()] + [GLOSSARY]
    unknown = linked_terms(pages) - names
    assert not unknown, f"{{term}} links to no glossary entry: {sorted(unknown)}"


def test_every_glossary_term_is_linked_from_a_chapter():
    pages = [BOOK / f"{Path(c).name}.md" for c in chapters()]
    linked = linked_terms(pages)
    unlinked = [entry[0] for entry in glossary_entries() if not {n.lower() for n in entry} & linked]
    assert not unlinked, f"glossary terms no chapter links to: {unlinked}"
