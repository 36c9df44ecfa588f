"""Records of another identity are set aside, never overwritten (docs/results.md).

Before a run executes its cells, every finished cell folder whose record has another
identity than the cell the run is about to execute (a run with ``--set`` or ``--seeds``, an
edited spec, a new adapter version) is moved to
``OUT/superseded/<cell-id>/<identity[:16]>/``, record, examples and artifacts together,
with ``superseded.json`` saying when and by which identity. A later run whose cell has an
identity set aside there moves it back instead of re-running it.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .results import RECORD, ResultsDir, atomic_write_json

SUPERSEDED = "superseded"
NOTE = "superseded.json"


def _key(identity: str) -> str:
    return "".join(ch for ch in str(identity) if ch.isalnum())[:16] or "unknown"


def _aside_dir(root: Path, cell_id: str, identity: str) -> Path:
    return root / SUPERSEDED / cell_id / _key(identity)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _move(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def prepare(plan: Any) -> dict[str, int]:
    """Set aside the finished records the plan's unfinished cells would overwrite, and
    bring back set-aside records of the identity a cell now has (that cell is then done).
    Returns ``{"superseded": n, "restored": m}``."""
    root = Path(plan.out_dir)
    results = ResultsDir(root)
    counts = {"superseded": 0, "restored": 0}
    for cell in plan.cells:
        if cell.status == "done":
            continue
        cell_dir = results.cell_dir(cell.cell_id)
        current = _read(cell_dir / RECORD)
        other = (current is not None and current.get("status") == "ok"
                 and current.get("identity") != cell.identity)
        back = _aside_dir(root, cell.cell_id, cell.identity)
        kept = _read(back / RECORD)
        restore = (kept is not None and kept.get("status") == "ok"
                   and kept.get("identity") == cell.identity)
        if other and current is not None:
            _move(cell_dir, _aside_dir(root, cell.cell_id, str(current.get("identity"))))
            atomic_write_json(_aside_dir(root, cell.cell_id, str(current.get("identity")))
                              / NOTE, {"cell_id": cell.cell_id,
                                       "identity": current.get("identity"),
                                       "superseded_by": cell.identity,
                                       "superseded_at": datetime.now(timezone.utc).isoformat()})
            counts["superseded"] += 1
        if restore:
            (back / NOTE).unlink(missing_ok=True)
            _move(back, cell_dir)
            if not any(back.parent.iterdir()):
                back.parent.rmdir()
            cell.status = "done"
            counts["restored"] += 1
    return counts


def superseded_records(root: Path) -> list[dict[str, Any]]:
    """Every record set aside under ``root/superseded``: cell id, identity, name, status,
    when it was set aside and by which identity, and its folder."""
    out = []
    for record_path in sorted((Path(root) / SUPERSEDED).glob(f"*/*/{RECORD}")):
        record = _read(record_path) or {}
        note = _read(record_path.with_name(NOTE)) or {}
        raw_cell = record.get("cell")
        cell: dict[str, Any] = raw_cell if isinstance(raw_cell, dict) else {}
        out.append({"cell_id": record_path.parent.parent.name,
                    "identity": record.get("identity"), "name": cell.get("name"),
                    "status": record.get("status"), "metrics": record.get("metrics", {}),
                    "superseded_at": note.get("superseded_at"),
                    "superseded_by": note.get("superseded_by"),
                    "path": str(record_path.parent)})
    return out


def print_superseded(root: Path, console: Any) -> None:
    """`harness show`: the records set aside in this folder, one line each."""
    rows = superseded_records(root)
    if not rows:
        return
    console.print(f"superseded: {len(rows)} record(s) of another identity kept in "
                  f"{Path(root) / SUPERSEDED}/", highlight=False)
    for row in rows:
        console.print(f"  {row['cell_id']}  identity {str(row['identity'])[:16]}  "
                      f"{row['status']}  set aside {row['superseded_at'] or '?'}",
                      highlight=False)
