"""``harness runs [DIR]``: the results folders under DIR, from their SQLite indexes.

One row per folder holding an ``index.sqlite`` (a control's folder included, marked with
its control name): the spec, when its last cell finished, its cells (ok / failed) and
its claims passed (from the folder's ``summary.json`` when there is one).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from .errors import ResultsError

INDEX = "index.sqlite"
MAX_DEPTH = 6


def find_indexes(root: Path) -> list[Path]:
    """Every ``index.sqlite`` under ``root`` (symlinked folders not followed)."""
    found: list[Path] = []
    base_depth = len(root.parts)
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if INDEX in files:
            found.append(here / INDEX)
        dirs[:] = sorted(d for d in dirs if d != "cells" and not d.startswith(".")
                         and len(here.parts) - base_depth < MAX_DEPTH)
    return sorted(found)


def read_index(path: Path) -> dict[str, Any]:
    """What the index says of one results folder (read-only)."""
    row: dict[str, Any] = {"folder": str(path.parent)}
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            specs = [r[0] for r in con.execute("SELECT DISTINCT spec FROM cells ORDER BY spec")]
            counts = dict(con.execute("SELECT status, COUNT(*) FROM cells GROUP BY status"))
            last = con.execute("SELECT MAX(finished) FROM cells").fetchone()[0]
            took = con.execute("SELECT SUM(duration_s) FROM cells").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as exc:
        row.update(error=f"unreadable index: {exc}")
        return row
    row.update(spec=", ".join(str(s) for s in specs if s) or "?", finished=last,
               cells=sum(counts.values()), ok=counts.get("ok", 0),
               failed=sum(n for s, n in counts.items() if s != "ok"), wall_s=took)
    summary_path = path.parent / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        claims = summary.get("claims", [])
        statuses = [c.get("status") or ("PASS" if c.get("passed") else "FAIL") for c in claims]
        row.update(claims=len(claims), passed=sum(s in ("PASS", "XFAIL") for s in statuses),
                   statuses=statuses, control=summary.get("control"))
    except (OSError, ValueError, AttributeError):
        row.update(claims=None, passed=None)
    return row


def list_runs(root: Path) -> list[dict[str, Any]]:
    if not root.exists():
        raise ResultsError(f"no such folder: {root}",
                           hint="give a folder holding results folders (default: results)")
    if not root.is_dir():
        raise ResultsError(f"{root} is a file, not a folder",
                           hint="give a folder holding results folders (default: results)")
    rows = [read_index(p) for p in find_indexes(root)]
    return sorted(rows, key=lambda r: str(r.get("finished") or ""), reverse=True)


def print_runs(rows: list[dict[str, Any]], root: Path, console: Any) -> None:
    from rich.table import Table
    if not rows:
        console.print(f"no results folders under {root} (none holds an {INDEX})")
        return
    table = Table(title=f"runs under {root}, newest first", title_justify="left")
    for col in ("folder", "spec", "last cell finished", "cells ok/all", "claims ok/all"):
        table.add_column(col)
    for r in rows:
        if "error" in r:
            table.add_row(str(r["folder"]), "?", "?", "?", str(r["error"]))
            continue
        when = str(r["finished"] or "-")[:19].replace("T", " ")
        claims = "-" if r["claims"] is None else f"{r['passed']}/{r['claims']}"
        spec = r["spec"] + (f" (control {r['control']})" if r.get("control") else "")
        table.add_row(str(r["folder"]), str(spec), when,
                      f"{r['ok']}/{r['cells']}", claims)
    console.print(table)
