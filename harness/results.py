"""The results folder: atomic JSON records, examples, artifacts, an SQLite index.

Layout (see docs/results.md)::

    DIR/summary.json                 spec, cells, aggregates, claims
    DIR/index.sqlite                 cells and metrics, for listing and querying
    DIR/cells/<cell-id>/record.json  one record per cell, with provenance
    DIR/cells/<cell-id>/examples.jsonl   per-example outputs (optional)
    DIR/cells/<cell-id>/artifacts/   plots, arrays
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ResultsError

RECORD = "record.json"
SUMMARY = "summary.json"
INDEX = "index.sqlite"


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf become None-free strings are avoided; numbers stay numbers."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(_clean(r), ensure_ascii=False) + "\n"
                                    for r in rows))


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{what} is corrupt: {path}: {exc}",
                           hint="re-run `harness run SPEC --out DIR`: it rebuilds summaries "
                           "from the cell records and re-runs cells whose record is corrupt"
                           ) from None


class ResultsDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def cell_dir(self, cell_id: str) -> Path:
        return self.root / "cells" / cell_id

    def record_path(self, cell_id: str) -> Path:
        return self.cell_dir(cell_id) / RECORD

    def read_record(self, cell_id: str) -> dict[str, Any] | None:
        """The record, or None if absent. A corrupt record is set aside, never deleted."""
        path = self.record_path(cell_id)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or "identity" not in record:
                raise ValueError("not a cell record")
            return record
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            aside = path.with_name(f"record.corrupt-{int(time.time())}.json")
            os.replace(path, aside)
            return None

    def write_record(self, cell_id: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.record_path(cell_id), record)

    def records(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted((self.root / "cells").glob(f"*/{RECORD}")):
            out.append(read_json(path, "cell record"))
        return out

    def summary(self) -> dict[str, Any]:
        if not self.root.exists():
            raise ResultsError(f"results folder not found: {self.root}",
                               hint="give the --out folder of a `harness run`")
        if not self.root.is_dir():
            raise ResultsError(f"{self.root} is a file, not a results folder",
                               hint="give the --out folder of a `harness run` (e.g. "
                               "results/<spec name>), not the spec file")
        return read_json(self.root / SUMMARY, "summary")

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.root / SUMMARY, summary)

    # -- SQLite index ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.root / INDEX, timeout=30)
        con.execute("""CREATE TABLE IF NOT EXISTS cells (
            id TEXT PRIMARY KEY, spec TEXT, name TEXT, grp TEXT, spec_seed INTEGER,
            seed INTEGER, status TEXT, identity TEXT, dataset TEXT, model TEXT, method TEXT,
            point TEXT, duration_s REAL, finished TEXT, record TEXT)""")
        con.execute("""CREATE TABLE IF NOT EXISTS metrics (
            cell_id TEXT, name TEXT, value REAL, PRIMARY KEY (cell_id, name))""")
        return con

    def index(self, records: Iterable[dict[str, Any]]) -> None:
        con = self._connect()
        try:
            with con:
                for rec in records:
                    cell = rec["cell"]
                    cid = rec["cell_id"]
                    axes = cell.get("axes", {})
                    con.execute("INSERT OR REPLACE INTO cells VALUES "
                                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", (
                                    cid, cell.get("spec"), cell["name"], cell["group"],
                                    cell["spec_seed"], cell["seed"], rec["status"],
                                    rec["identity"], axes.get("dataset"), axes.get("model"),
                                    axes.get("method"), axes.get("point"),
                                    rec.get("timings", {}).get("total_s"), rec.get("finished"),
                                    str(self.record_path(cid).relative_to(self.root))))
                    con.execute("DELETE FROM metrics WHERE cell_id = ?", (cid,))
                    con.executemany("INSERT INTO metrics VALUES (?,?,?)", [
                        (cid, k, v) for k, v in rec.get("metrics", {}).items()
                        if isinstance(v, (int, float))])
        finally:
            con.close()

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        if not (self.root / INDEX).exists():
            raise ResultsError(f"no index in {self.root}", hint="run `harness run` first")
        con = sqlite3.connect(f"file:{self.root / INDEX}?mode=ro", uri=True)
        try:
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description or []]
            return cols, cur.fetchall()
        except sqlite3.Error as exc:
            raise ResultsError(f"query failed: {exc}",
                               hint="tables: cells(id, name, grp, seed, status, ...), "
                               "metrics(cell_id, name, value)") from None
        finally:
            con.close()
