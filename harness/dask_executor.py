"""A distributed executor on Dask (``pip install 'harness-bench[distributed]'``).

``harness run SPEC --executor dask`` starts a local cluster of ``--jobs`` single-thread
worker processes; ``--dask-address tcp://scheduler:8786`` (or ``HARNESS_DASK_ADDRESS``)
uses an existing cluster instead: workers started by hand, by dask-jobqueue on
SLURM/PBS, or by any other Dask deployment. Where cells run is the user's choice: a
spec cannot name a cluster. See docs/distributed.md.

- Workers need no shared filesystem: each cell runs in a scratch folder of the worker
  (:mod:`harness.dask_worker`) and its record and files come back to this process, which
  writes them into the results folder (:mod:`harness.dask_results`) as they arrive.
- Before submitting, every worker is checked for the harness and the plugins the spec's
  adapters come from, at this process's versions; a missing or mismatched one is an error
  naming the worker and the package (exit 2).
- A worker that dies mid-cell costs that cell's progress only: the scheduler gives the
  cell to another worker (up to ``distributed.scheduler.allowed-failures`` deaths, then the
  cell is recorded as failed); finished cells are recorded at once, so an interrupted run
  resumes with the cells that are left, like any other run.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

from .dask_results import accept_result, failed_record, max_result_bytes, write_cell
from .dask_worker import TOPIC, environment_report, run_cell_task
from .errors import HarnessError
from .executors import Executor, OnDone, OnStep
from .plan import CellPlan
from .provenance import package_versions
from .results import ResultsDir

ADDRESS_ENV = "HARNESS_DASK_ADDRESS"
WAIT_ENV = "HARNESS_DASK_WAIT_S"
CONNECT_TIMEOUT_S = 30
DOCS = "docs/distributed.md"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise HarnessError("the dask executor needs dask.distributed",
                           hint="pip install 'harness-bench[distributed]'") from None
    return distributed


@contextmanager
def dask_client(address: str | None, jobs: int,
                connect_timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A client of the cluster at ``address``, or of a local cluster of ``jobs``
    single-thread worker processes started (and stopped) here."""
    distributed = _import_distributed()
    if address:
        try:
            client = distributed.Client(address, timeout=connect_timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise HarnessError(f"cannot reach the Dask scheduler at {address}: {exc}",
                               hint="check --dask-address / $HARNESS_DASK_ADDRESS and that "
                               f"`dask scheduler` runs there ({DOCS})") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = distributed.LocalCluster(n_workers=max(1, jobs), threads_per_worker=1,
                                       processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def requirements(plans: list[CellPlan]) -> dict[str, Any]:
    """What a worker must have for these cells: the harness and every package an adapter
    of theirs comes from, at this process's versions; torch and numpy are advisory."""
    from .registry import get_registry
    registry = get_registry()
    packages = {"harness-bench": metadata.version("harness-bench")}
    adapters: dict[str, list[str]] = {}
    for plan in plans:
        for name, version in plan.versions.items():
            info = registry.adapters.get(name)
            if info is None:
                continue
            if info.package != "?":
                packages[info.package] = info.package_version
            adapters[name] = [info.package, version, info.cls.__module__,
                              info.cls.__qualname__]
    have = package_versions()
    advisory = {p: have[p] for p in ("torch", "numpy") if p in have}
    return {"packages": dict(sorted(packages.items())), "adapters": dict(sorted(adapters.items())),
            "advisory": advisory}


def check_workers(client: Any, needed: dict[str, Any], where: str) -> dict[str, Any]:
    """Each worker's report (see :func:`environment_report`); raises HarnessError naming
    every worker that lacks a package or adapter, or has a different version."""
    wait = float(os.environ.get(WAIT_ENV) or 60)
    try:
        client.wait_for_workers(1, timeout=wait)
    except TimeoutError:
        raise HarnessError(f"no Dask worker joined the scheduler at {where} within {wait:.0f} s",
                           hint="start workers with `dask worker ADDRESS --nthreads 1` "
                           f"({DOCS}), or wait longer with {WAIT_ENV}=600") from None
    reports = client.run(environment_report, needed, on_error="return")
    problems: list[str] = []
    for address, report in sorted(reports.items()):
        if isinstance(report, BaseException):
            problems.append(f"worker {address}: cannot run the harness there: "
                            f"{type(report).__name__}: {report}")
            continue
        name = report.get("name")
        tag = (f"worker {address}" + (f" ({name})" if name and name != address else "")
               + f" on host {report['host']}, pid {report['pid']}")
        problems += [f"{tag}: {p}" for p in report["problems"]]
        for text in report["warnings"]:
            warnings.warn(f"{tag}: {text}", UserWarning, stacklevel=2)
        if report.get("nthreads", 1) > 1:
            warnings.warn(f"{tag} has {report['nthreads']} threads, but runs one cell at a "
                          "time (per-process random state): start workers with "
                          "`--nthreads 1 --nworkers N` to use N cores", UserWarning,
                          stacklevel=2)
    if problems:
        raise HarnessError("Dask workers lack what this spec needs:\n  " + "\n  ".join(problems),
                           hint="install the same harness-bench and plugin versions on every "
                           f"worker, or stop those workers ({DOCS}, 'What workers need')")
    return reports


def _describe_failure(exc: BaseException) -> str:
    distributed = _import_distributed()
    if isinstance(exc, distributed.KilledWorker):
        last = getattr(exc, "last_worker", None)
        where = getattr(last, "address", last)
        return (f"the cell's worker died {getattr(exc, 'allowed_failures', '?')} time(s) while "
                f"running it, last {where} (out of memory, killed, or a crash in native "
                "code); raise distributed.scheduler.allowed-failures to try more workers")
    return f"{type(exc).__name__}: {exc}"


def _overdue(pending: dict[str, tuple[Any, CellPlan]],
             running: dict[str, tuple[float, dict[str, Any]]]) -> list[str]:
    """Keys of running cells past their plan's ``timeout_s`` (settings.timeout_s)."""
    now = time.monotonic()
    out = []
    for key, (started, _) in running.items():
        limit = pending[key][1].timeout_s if key in pending else None
        if limit is not None and now - started > limit:
            out.append(key)
    return out


def _step_label(info: dict[str, Any]) -> str:
    worker = info.get("where") or {}
    where = f"{worker.get('host', '?')} pid {worker.get('pid', '?')}"
    if info.get("label") == "start":
        return f"running on {where}"
    return f"{info.get('label')} ({where})"


class DaskExecutor(Executor):
    """Runs cells as Dask tasks on a local or remote cluster."""

    name: ClassVar[str] = "dask"

    def __init__(self, jobs: int = 1, address: str | None = None) -> None:
        super().__init__(jobs)
        self.address = address or os.environ.get(ADDRESS_ENV) or None

    def run(self, plans: list[CellPlan], out_dir: str, on_done: OnDone, on_step: OnStep) -> None:
        if not plans:
            return
        max_bytes = max_result_bytes()
        needed = requirements(plans)
        with dask_client(self.address, self.jobs) as client:
            check_workers(client, needed, self.address or "the local cluster")
            self._run_cells(client, plans, ResultsDir(Path(out_dir)), on_done, on_step,
                            needed, max_bytes)

    def _run_cells(self, client: Any, plans: list[CellPlan], results: ResultsDir,
                   on_done: OnDone, on_step: OnStep, needed: dict[str, Any],
                   max_bytes: int) -> None:
        run_id = uuid.uuid4().hex[:12]
        events: queue.Queue[tuple[str, Any]] = queue.Queue()

        def on_event(event: Any) -> None:
            msg = event[1] if isinstance(event, tuple) else event
            if isinstance(msg, dict) and msg.get("run") == run_id:
                events.put(("step", msg))

        client.subscribe_topic(TOPIC, on_event)
        pending: dict[str, tuple[Any, CellPlan]] = {}
        keys: dict[str, str] = {}  # cell name -> future key
        running: dict[str, tuple[float, dict[str, Any]]] = {}  # key -> (started, worker)
        try:
            for i, plan in enumerate(plans):
                future = client.submit(run_cell_task, pickle.dumps(plan), needed, max_bytes,
                                       run_id, key=f"cell-{plan.cell_id}-{run_id}-{i}",
                                       pure=False)
                pending[future.key] = (future, plan)
                keys[plan.name] = future.key
                on_step(plan.name, "queued", 0, None)
                future.add_done_callback(lambda f: events.put(("done", f)))
            while pending:
                try:
                    kind, item = events.get(timeout=1.0)
                except queue.Empty:
                    kind, item = "tick", None
                if kind == "step":
                    key = keys.get(item["cell"], "")
                    if item.get("label") == "start" and key in pending:
                        running[key] = (time.monotonic(), item.get("where") or {})
                    on_step(item["cell"], _step_label(item), item.get("done", 0),
                            item.get("total"))
                elif kind == "done" and item.key in pending:
                    future, plan = pending.pop(item.key)
                    running.pop(item.key, None)
                    record = self._record(future, plan, results, max_bytes)
                    future.release()
                    on_done(plan, record)
                for key in _overdue(pending, running):
                    future, plan = pending.pop(key)
                    record = self._time_out(client, future, plan, running.pop(key)[1],
                                            results)
                    on_done(plan, record)
        finally:
            for future, _ in pending.values():
                future.cancel()
            try:
                client.unsubscribe_topic(TOPIC)
            except Exception:  # the client may be closing already
                pass

    @staticmethod
    def _time_out(client: Any, future: Any, plan: CellPlan, where: dict[str, Any],
                  results: ResultsDir) -> dict[str, Any]:
        """Record a cell past its ``timeout_s`` as failed; cancel it and restart its worker
        (a running task cannot be stopped inside its process)."""
        future.cancel()
        address = where.get("address")
        status = "not restarted: unknown address"
        if address:
            try:  # the scheduler's restart_workers, without waiting for the same address
                # to come back (a restarted worker listens on a new port)
                out = client.sync(client.scheduler.restart_workers, workers=[address],
                                  timeout=30, wait_for_workers=False, on_error="return",
                                  stimulus_id=f"harness-timeout-{time.time()}")
                status = str(out.get(address))
            except Exception as exc:  # an older scheduler, or the worker is gone already
                status = f"not restarted: {type(exc).__name__}: {exc}"
        limit = plan.timeout_s or 0.0
        record = failed_record(
            plan, f"timed out after {limit:g} s (settings.timeout_s / --timeout) on "
            f"{where.get('host', '?')} pid {where.get('pid', '?')}; its worker was restarted "
            f"({status})", user=False, worker=where)
        record["error"]["type"] = "CellAborted"  # as the pool executor records a timeout
        write_cell(results, plan, record, {})
        return record

    @staticmethod
    def _record(future: Any, plan: CellPlan, results: ResultsDir,
                max_bytes: int) -> dict[str, Any]:
        """Write what the future brought (or a failed record) into the results folder."""
        files: dict[str, bytes] = {}
        if future.cancelled():
            record = failed_record(plan, "the cell was cancelled by the cluster", user=False)
        elif future.status == "error":
            record = failed_record(plan, _describe_failure(future.exception()), user=False)
        else:
            record, files = accept_result(plan, future.result(), max_bytes)
        write_cell(results, plan, record, files)
        return record
