"""The results folder: atomic JSON records, examples, artifacts, an SQLite index.

Layout (see docs/results.md)::

    DIR/summary.json                 spec, cells, aggregates, claims
    DIR/index.sqlite                 cells and metrics, for listing and querying
    DIR/cells/<cell-id>/record.json  one record per cell, with provenance
    DIR/cells/<cell-id>/examples.jsonl   per-example outputs (optional)
    DIR/cells/<cell-id>/artifacts/   plots, arrays
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import tempfile
import time
import urllib.parse
import warnings
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
    """Write UTF-8 text via a temporary file in the same folder and an atomic rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False) + "\n")


def flat_json(obj: dict[str, Any]) -> str:
    """A JSON object with one top-level key per line and each value on that line.

    ``json.dumps(..., indent=2)`` runs Python's pure-Python encoder (the C one serves only
    ``indent=None``): encoding each top-level value with the C encoder is 5-10x faster on a
    cell record and keeps the file easy to read and to diff key by key."""
    clean = _clean(obj)
    lines = [f"  {json.dumps(str(k))}: {json.dumps(v)}" for k, v in clean.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n" if lines else "{}\n"


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


_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
_READ_PRAGMAS = {"table_info", "table_xinfo", "table_list", "index_list", "index_info",
                 "foreign_key_list", "collation_list", "function_list"}


def _read_only(action: int, arg1: str | None, arg2: str | None, db: str | None,
               trigger: str | None) -> int:
    """The SQLite authorizer of ``harness query``: reading only. ``ATTACH`` (which
    ``VACUUM INTO`` uses too), writes, schema changes and most pragmas are denied, so a
    query cannot create or change any file."""
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READ_PRAGMAS and arg2 is None:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


class ResultsWarning(UserWarning):
    """A corrupt file in a results folder was set aside."""


_RECORD_FIELDS: dict[str, type] = {"cell_id": str, "identity": str, "status": str, "cell": dict,
                  "settings": dict}
_CELL_FIELDS: dict[str, type] = {"name": str, "group": str, "seed": int, "spec_seed": int}


def record_problem(record: Any, cell_id: str) -> str | None:
    """Why ``record`` is not a valid cell record for folder ``cell_id`` (None if it is).
    Records are untrusted input: every field the harness reads is checked here."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, typ in _RECORD_FIELDS.items():
        if not isinstance(record.get(key), typ):
            return f"`{key}` is missing or not a {typ.__name__}"
    if record["cell_id"] != cell_id:
        return f"its cell_id {record['cell_id']!r} is not its folder's name"
    if record["status"] not in ("ok", "failed", "running"):
        return f"unknown status {record['status']!r}"
    for key, typ in _CELL_FIELDS.items():
        if not isinstance(record["cell"].get(key), typ):
            return f"`cell.{key}` is missing or not a {typ.__name__}"
    metrics = record.get("metrics", {})
    if not isinstance(metrics, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float, str)) and not isinstance(v, bool)
            for k, v in metrics.items()):
        return "`metrics` is not a mapping of names to numbers"
    for key in ("timings", "error", "outputs", "versions", "provenance"):
        if key in record and not isinstance(record[key], dict):
            return f"`{key}` is not a mapping"
    return None


def safe_cell_id(cell_id: Any) -> bool:
    """A cell id names one folder right under ``cells/``: no separators, no ``..``."""
    return (isinstance(cell_id, str) and bool(cell_id) and cell_id not in (".", "..")
            and "/" not in cell_id and "\\" not in cell_id and "\0" not in cell_id)


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, symlinks resolved, is within ``root``."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):
        return False


def artifact_pngs(out_dir: Path, cell_id: Any) -> list[Path]:
    """A cell's PNG artifacts that really are in the results folder (a symlink out of it,
    or a cell id with ``..`` from an edited summary, yields nothing)."""
    if not safe_cell_id(cell_id):
        return []
    art = Path(out_dir) / "cells" / cell_id / "artifacts"
    if not art.is_dir() or not inside(art, out_dir):
        return []
    return [p for p in sorted(art.glob("*.png")) if p.is_file() and inside(p, out_dir)]


class ResultsDir:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def cell_dir(self, cell_id: str) -> Path:
        return self.root / "cells" / cell_id

    def record_path(self, cell_id: str) -> Path:
        return self.cell_dir(cell_id) / RECORD

    def read_record(self, cell_id: str) -> dict[str, Any] | None:
        """The record, or None if absent. A corrupt record (not JSON, not a cell record of
        this folder, a folder in its place) is set aside with a warning, never deleted; the
        cell then runs again."""
        if not safe_cell_id(cell_id):
            return None
        path = self.record_path(cell_id)
        if not os.path.lexists(path):
            return None
        problem = None
        if path.is_symlink() or not path.is_file():
            problem = "it is not a regular file"
        else:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                problem = record_problem(record, cell_id)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                problem = f"it is not valid JSON ({type(exc).__name__})"
            except OSError as exc:
                raise ResultsError(f"cannot read the cell record {path}: {exc.strerror}",
                                   hint="check the results folder's permissions") from None
        if problem is None:
            return record  # type: ignore[no-any-return]
        aside = path.with_name(f"record.corrupt-{time.time_ns()}.json")
        try:
            os.replace(path, aside)
        except OSError as exc:
            raise ResultsError(f"the cell record {path} is corrupt ({problem}) and cannot be "
                               f"set aside: {exc.strerror}",
                               hint="move or delete it, then run again") from None
        warnings.warn(f"the cell record {path} is corrupt ({problem}): set aside as "
                      f"{aside.name}; the cell runs again", ResultsWarning, stacklevel=2)
        return None

    def write_record(self, cell_id: str, record: dict[str, Any]) -> None:
        atomic_write_text(self.record_path(cell_id), flat_json(record))

    def records(self) -> list[dict[str, Any]]:
        """Every valid record in the folder (corrupt ones are set aside)."""
        out: list[dict[str, Any]] = []
        cells = self.root / "cells"
        if not cells.is_dir() or cells.is_symlink():
            return out
        for folder in sorted(cells.iterdir()):
            record = self.read_record(folder.name) if folder.is_dir() else None
            if record is not None:
                out.append(record)
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
        # the index is derived from the records (each of which is synced to disk when its
        # cell ends): every run re-indexes the records it reuses, and an index that is not
        # a usable SQLite file is rebuilt, so its commits need not wait for the disk
        con.execute("PRAGMA synchronous = OFF")
        con.execute("""CREATE TABLE IF NOT EXISTS cells (
            id TEXT PRIMARY KEY, spec TEXT, name TEXT, grp TEXT, spec_seed INTEGER,
            seed INTEGER, status TEXT, identity TEXT, dataset TEXT, model TEXT, method TEXT,
            point TEXT, duration_s REAL, finished TEXT, record TEXT)""")
        con.execute("""CREATE TABLE IF NOT EXISTS metrics (
            cell_id TEXT, name TEXT, value REAL, PRIMARY KEY (cell_id, name))""")
        return con

    def index(self, records: Iterable[dict[str, Any]]) -> None:
        """Add records to the index; an index that is not a usable SQLite file is set
        aside and rebuilt from every record in the folder."""
        records = list(records)
        try:
            self._index(records)
        except sqlite3.DatabaseError as exc:
            path = self.root / INDEX
            aside = path.with_name(f"index.corrupt-{time.time_ns()}.sqlite")
            with contextlib.suppress(OSError):
                os.replace(path, aside)
            warnings.warn(f"the index {path} is corrupt ({exc}): set aside as {aside.name} "
                          "and rebuilt from the cell records", ResultsWarning, stacklevel=2)
            done = {r["cell_id"] for r in records}
            self._index(records + [r for r in self.records() if r["cell_id"] not in done])

    def _index(self, records: list[dict[str, Any]]) -> None:
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
        con = sqlite3.connect(f"file:{urllib.parse.quote(str(self.root / INDEX))}?mode=ro",
                              uri=True)
        try:
            con.execute("PRAGMA query_only = 1")
            con.set_authorizer(_read_only)
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description or []]
            return cols, cur.fetchall()
        except sqlite3.Error as exc:
            raise ResultsError(f"query failed: {exc}",
                               hint="queries are read-only (SELECT; no ATTACH, VACUUM INTO "
                               "or writes); tables: cells(id, name, grp, seed, status, ...), "
                               "metrics(cell_id, name, value)") from None
        finally:
            con.close()
