"""The worker side of the dask executor: what a Dask worker process runs for a cell.

A worker needs no access to the results folder. It executes the cell with
:func:`harness.runner.execute_cell` in a scratch folder of its own (under the worker's
local directory), then returns the record and the cell's files (artifacts,
examples.jsonl) as bytes; the submitting process writes them into the results folder
(:mod:`harness.dask_executor`). Cells run one at a time per worker process (the global
random generators and torch's thread count are per process), and datasets are loaded
once per worker process through :mod:`harness.datacache`, as in the pool executor.

Before any cell runs, :func:`environment_report` tells the submitting process which
packages and adapters this worker has, so a missing or mismatched plugin is an error
before submitting, not a failed cell.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from .cachedir import default_cache

TOPIC = "harness-progress"
RECORD = "record.json"
# advisory: a different version may change numbers, but does not stop a run
ADVISORY_PACKAGES = ("torch", "numpy")
_CELL_LOCK = threading.Lock()
_REPORTS: dict[str, dict[str, Any]] = {}


def worker_identity(worker: Any = None) -> dict[str, Any]:
    """Host, process id and Dask address of the process this runs in."""
    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if worker is None:
        try:
            from distributed import get_worker
            worker = get_worker()
        except (ImportError, ValueError):  # not in a worker (tests call this directly)
            return info
    info["address"] = worker.address
    info["name"] = str(worker.name)
    info["nthreads"] = worker.state.nthreads
    return info


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment_report(needed: dict[str, Any], dask_worker: Any = None) -> dict[str, Any]:
    """What this worker lacks for a run: ``needed`` is ``{"packages": {name: version},
    "adapters": {adapter: [package, version, module, class name]}, "advisory": {name:
    version}}`` as the submitting process has them (``dask_worker``: given by
    ``Client.run``). Returns the worker's identity with ``problems``
    (missing or mismatched packages and adapters) and ``warnings`` (advisory ones)."""
    key = repr(sorted((k, sorted(v.items())) for k, v in needed.items()))
    if key in _REPORTS:
        return _REPORTS[key]
    if dask_worker is None:  # in a task: the identity of the worker running it
        try:
            from distributed import get_worker
            dask_worker = get_worker()
        except (ImportError, ValueError):
            pass
    problems: list[str] = []
    warns: list[str] = []
    for package, want in needed.get("packages", {}).items():
        have = _installed(package)
        if have is None:
            problems.append(f"package {package} is not installed (the submitting side has "
                            f"{package} {want})")
        elif have != want:
            problems.append(f"package {package} is {have}, the submitting side has {want}")
    if not problems:  # adapters: only worth checking when the packages are right
        for name, (package, version, module, qualname) in needed.get("adapters", {}).items():
            try:
                cls: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    cls = getattr(cls, part)
            except Exception as exc:  # any import failure of plugin code
                problems.append(f"adapter {name} (package {package}) cannot be loaded: "
                                f"{module}.{qualname}: {type(exc).__name__}: {exc}")
                continue
            if getattr(cls, "version", None) != version:
                problems.append(f"adapter {name} is version {getattr(cls, 'version', None)}, "
                                f"the submitting side has {version}")
    for package, want in needed.get("advisory", {}).items():
        have = _installed(package)
        if have != want:
            warns.append(f"{package} is {have or 'not installed'}, the submitting side has "
                         f"{want}: numbers may differ")
    report = {**worker_identity(dask_worker), "problems": problems, "warnings": warns}
    _REPORTS[key] = report
    return report


def _emit(run_id: str, info: dict[str, Any]) -> None:
    try:
        from distributed import get_worker
        get_worker().log_event(TOPIC, {"run": run_id, **info})
    except (ImportError, ValueError):
        pass


def collect_files(cell_dir: Path, max_bytes: int) -> tuple[dict[str, bytes], int]:
    """The cell's files (everything but its record), relative paths to bytes, and their
    total size; an empty dict when the total is over ``max_bytes``."""
    paths = sorted(p for p in cell_dir.rglob("*") if p.is_file() and p.name != RECORD
                   and not p.name.endswith(".tmp"))
    total = sum(p.stat().st_size for p in paths)
    if total > max_bytes:
        return {}, total
    return {p.relative_to(cell_dir).as_posix(): p.read_bytes() for p in paths}, total


def run_cell_task(plan_bytes: bytes, needed: dict[str, Any], max_bytes: int,
                  run_id: str) -> dict[str, Any]:
    """Execute one pickled cell plan on this worker; returns ``{"worker", "record",
    "files"}``, or ``{"worker", "problems"}`` when this worker lacks a package (a worker
    that joined after the check before submitting)."""
    from .runner import execute_cell
    report = environment_report(needed)
    ident = {k: report[k] for k in ("host", "pid", "address", "name") if k in report}
    if report["problems"]:
        return {"worker": ident, "problems": report["problems"]}
    try:
        plan = pickle.loads(plan_bytes)
    except Exception as exc:  # an adapter module this worker cannot import
        return {"worker": ident, "problems": [f"cannot load the cell: {type(exc).__name__}: "
                                              f"{exc}"]}
    plan = replace(plan, cache_dir=str(default_cache()))  # the worker's own cache
    last = [0.0]

    def step(label: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or (total is not None and done >= total):
            last[0] = now
            _emit(run_id, {"cell": plan.name, "label": label, "done": done, "total": total,
                           "where": ident})

    with _CELL_LOCK:
        _emit(run_id, {"cell": plan.name, "label": "start", "done": 0, "total": None,
                       "where": ident})
        local = _local_directory()
        scratch = Path(tempfile.mkdtemp(prefix="harness-cell-", dir=local))
        try:
            record = execute_cell(plan, str(scratch), step)
            files, total = collect_files(scratch / "cells" / plan.cell_id, max_bytes)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return {"worker": ident, "record": record, "files": files, "files_bytes": total}


def _local_directory() -> str | None:
    try:
        from distributed import get_worker
        return str(get_worker().local_directory)
    except (ImportError, ValueError):
        return None
