"""The submitting side of the dask executor's results: what a worker returns for a cell
(its record and files) is checked and written into the results folder here, atomically,
file by file and the record last, exactly where an in-process run writes them.

The record is the commit mark: a cell whose record is missing or not ``ok`` is run again
by the next ``harness run``, so a crash between two files loses nothing but that cell.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from . import datacache
from .fingerprint import SCHEME_VERSION
from .plan import CellPlan, load_data
from .provenance import git_state, package_versions
from .results import ResultsDir, atomic_write_bytes, record_problem

MAX_RESULT_ENV = "HARNESS_DASK_MAX_RESULT_MB"
DEFAULT_MAX_RESULT_MB = 64.0


def max_result_bytes() -> int:
    """The cap on one cell's files (artifacts, examples.jsonl) sent back by a worker:
    ``HARNESS_DASK_MAX_RESULT_MB`` megabytes, 64 by default."""
    from .errors import HarnessError
    text = os.environ.get(MAX_RESULT_ENV, "")
    try:
        mb = float(text) if text else DEFAULT_MAX_RESULT_MB
    except ValueError:
        mb = -1.0
    if not mb > 0:
        raise HarnessError(f"{MAX_RESULT_ENV}={text!r} is not a positive number of megabytes",
                           hint=f"e.g. {MAX_RESULT_ENV}=256")
    return int(mb * 1024 * 1024)


def failed_record(plan: CellPlan, message: str, *, user: bool,
                  worker: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``failed`` record for a cell that produced none (its worker died, lacked a
    package, or the cell's files were too large to send)."""
    from .runner import RECORD_SCHEMA
    now = datetime.now(timezone.utc).isoformat()
    record: dict[str, Any] = {
        "schema": RECORD_SCHEMA, "hash_scheme": SCHEME_VERSION, "cell_id": plan.cell_id,
        "identity": plan.identity, "status": "failed", "cell": plan.config,
        "versions": plan.versions, "settings": plan.settings, "spec_source": plan.spec_source,
        "spec_hash": plan.spec_hash, "started": now, "finished": now, "metrics": {},
        "timings": {}, "error": {"type": "DaskError", "message": message, "user": user},
        "provenance": {"packages": package_versions(), "argv": sys.argv,
                       "git": git_state(_spec_folder(plan))},
    }
    if worker:
        record["worker"] = worker
    return record


def _spec_folder(plan: CellPlan) -> str:
    return str(Path(plan.spec_source).resolve().parent) if plan.spec_source else os.getcwd()


def _fail(record: dict[str, Any], message: str, user: bool) -> None:
    record.update(status="failed", error={"type": "DaskError", "message": message,
                                          "user": user})
    record["metrics_unchecked"] = record.get("metrics", {})
    record["metrics"] = {}


def accept_result(plan: CellPlan, payload: dict[str, Any], max_bytes: int) -> tuple[
        dict[str, Any], dict[str, bytes]]:
    """The record to write and the files to write with it, from a worker's payload.

    The record names the worker (host, pid, address); its git provenance and argv are
    the submitting side's (where the spec lives and the command that ran), its packages
    and platform the worker's (where the cell ran). A cell whose files exceed the cap,
    or whose data differ from this machine's (another fingerprint), is failed."""
    worker = payload.get("worker", {})
    where = f"{worker.get('host', '?')} (pid {worker.get('pid', '?')})"
    if "problems" in payload:
        message = (f"worker {worker.get('address', '?')} on {where} cannot run this cell: "
                   + "; ".join(payload["problems"]))
        return failed_record(plan, message, user=True, worker=worker), {}
    record = dict(payload["record"])
    problem = record_problem(record, plan.cell_id)
    if problem is not None:  # what a worker sends is checked like a record on disk
        return failed_record(plan, f"the worker on {where} sent an invalid record: {problem}",
                             user=False, worker=worker), {}
    record["worker"] = worker
    prov = record.setdefault("provenance", {})
    prov["git"] = git_state(_spec_folder(plan))
    prov["argv"] = sys.argv
    files: dict[str, bytes] = payload.get("files", {})
    size = int(payload.get("files_bytes", 0))
    if record.get("status") == "ok" and size > max_bytes:
        _fail(record, f"the cell's files (artifacts, examples.jsonl) total {size / 2**20:.1f} "
              f"MB, over the dask executor's cap of {max_bytes / 2**20:.1f} MB; they were "
              f"not sent back from {where}. Raise the cap with {MAX_RESULT_ENV}="
              f"{int(size / 2**20) + 1} or more (docs/distributed.md)", user=True)
        files = {}
    unsafe = [rel for rel in files if not _is_safe(rel)]
    if unsafe:
        _fail(record, f"the worker on {where} sent files with unsafe paths: {unsafe[:3]}",
              user=False)
        files = {}
    fp = record.get("data_fingerprint")
    if (record.get("status") == "ok" and plan.data_fingerprint not in ("", "unloadable")
            and fp != plan.data_fingerprint):
        here = _fingerprint_here(plan)
        if here == fp:  # this machine's disk-cached fingerprint was stale; the worker
            # recomputed the record's identity as an in-process run does
            if plan.dataset is not None:
                datacache.store_fingerprint(plan.dataset, plan.data_seed,
                                            Path(plan.cache_dir), here)
        else:
            _fail(record, f"the worker on {where} loaded different data for this cell "
                  f"(fingerprint {fp}, here {here}): its dataset files or package versions "
                  "differ from this machine's", user=True)
            files = {}
    return record, files


def _fingerprint_here(plan: CellPlan) -> str:
    """The cell's data fingerprint loaded on this machine (not from the disk cache)."""
    try:
        return load_data(plan)[1]
    except Exception:  # unloadable here: it cannot be compared
        return "unloadable"


def _is_safe(rel: str) -> bool:
    """A relative path that stays inside the cell's folder and is not its record."""
    path = PurePosixPath(rel)
    return (bool(path.parts) and not path.is_absolute() and "\\" not in rel
            and all(p not in ("..", ".") for p in path.parts) and rel != "record.json")


def _target(cell_dir: Path, rel: str) -> Path:
    if not _is_safe(rel):
        raise ValueError(f"unsafe path from a worker: {rel!r}")
    return cell_dir.joinpath(*PurePosixPath(rel).parts)


def write_cell(results: ResultsDir, plan: CellPlan, record: dict[str, Any],
               files: dict[str, bytes]) -> None:
    """Replace the cell's files by ``files`` and write its record, last."""
    cell_dir = results.cell_dir(plan.cell_id)
    targets = [(_target(cell_dir, rel), data) for rel, data in sorted(files.items())]
    shutil.rmtree(cell_dir / "artifacts", ignore_errors=True)
    (cell_dir / "examples.jsonl").unlink(missing_ok=True)
    for path, data in targets:
        atomic_write_bytes(path, data)
    results.write_record(plan.cell_id, record)
