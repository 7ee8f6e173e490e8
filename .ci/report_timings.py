"""Print the book build's timings: each chapter's total and the slowest cells.

Reads ``timings.json`` and ``cell_timings.json``, which ``book/_ext/mlmci_book.py``
writes into the build folder; used by ``make book`` and by ``.ci/run``.

    python .ci/report_timings.py [BUILD_DIR] [--cells N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def report(build: Path, cells: int = 10) -> str:
    lines = ["Chapter execution times (s):"]
    for row in _load(build / "timings.json"):
        origin = "executed" if row["executed_now"] else "cached"
        flag = "  OVER BUDGET" if row["over_budget"] else ""
        lines.append(f"  {row['chapter']:<40} {row['seconds']:7.1f}  {origin}{flag}")
    rows = sorted(_load(build / "cell_timings.json"), key=lambda r: -r["seconds"])[:cells]
    lines.append(f"Slowest {len(rows)} cells (s):")
    for row in rows:
        where = f"{row['chapter']}.md:{row['line']}"
        origin = "" if row["executed_now"] else " (cached)"
        lines.append(f"  {where:<40} {row['seconds']:7.1f}  {row['source']}{origin}")
    if not rows:
        lines.append("  (no cell timings recorded)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", default="_build", type=Path)
    parser.add_argument("--cells", type=int, default=10, help="how many slow cells to list")
    args = parser.parse_args()
    print(report(args.build, args.cells))


if __name__ == "__main__":
    main()
