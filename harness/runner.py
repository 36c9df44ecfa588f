"""Run a plan's cells: skip finished ones, execute the rest, record, aggregate, judge claims."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import datacache, durations, supersede
from .adapter import CellResult
from .adopt import adopt
from .claims import claims_ok, evaluate_claims, evaluate_report
from .context import Progress, RunContext
from .errors import HarnessError, ResultsError
from .extras import missing_dependency
from .fingerprint import SCHEME_VERSION, cell_identity
from .lock import locked
from .metricrun import compute_metrics, metrics_error
from .plan import CellPlan, RunPlan, load_data, make_plan
from .results import ResultsDir, atomic_write_jsonl, safe_cell_id
from .stats import summarize

if TYPE_CHECKING:
    from .spec import Spec

# torch (through .provenance and the cell's device) is imported when a cell executes: a
# run whose cells are all recorded (harness.plancache) never imports it

RECORD_SCHEMA = 1
MAX_INLINE_OUTPUT = 200_000
log = logging.getLogger("harness")


_DROP = object()


def _prune(value: Any) -> Any:
    """The JSON-serializable part of ``value``: dicts and lists are kept item by item,
    tensors, arrays, modules and other objects are dropped."""
    if isinstance(value, dict):
        out = {str(k): v for k, v in ((k, _prune(v)) for k, v in value.items()) if v is not _DROP}
        return out
    if isinstance(value, (list, tuple)):
        items = [_prune(v) for v in value]
        return _DROP if any(v is _DROP for v in items) else items
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return _DROP


def _small(value: Any, limit: int = MAX_INLINE_OUTPUT) -> bool:
    return len(json.dumps(value, default=str)) <= limit


_INTERRUPTED = False


def _on_sigint(signum: int, frame: Any) -> None:
    global _INTERRUPTED
    _INTERRUPTED = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_marks_interrupt() -> Iterator[None]:
    """While running cells in this process, a real Ctrl-C (SIGINT) is told apart from an
    adapter raising ``KeyboardInterrupt``: only the former stops the run."""
    global _INTERRUPTED
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # ignored, or someone else's handler
        yield
        return
    _INTERRUPTED = False
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def new_record(plan: CellPlan) -> dict[str, Any]:
    return {
        "schema": RECORD_SCHEMA, "hash_scheme": SCHEME_VERSION, "cell_id": plan.cell_id,
        "identity": plan.identity, "status": "running", "cell": plan.config,
        "versions": plan.versions, "settings": plan.settings, "spec_source": plan.spec_source,
        "spec_hash": plan.spec_hash, "started": datetime.now(timezone.utc).isoformat(),
    }


def _drop_cut_writes(cell_dir: Path) -> None:
    """Delete the temporary files of writes cut short (a process killed mid-write) in a
    cell's folder, before the cell runs or is recorded again."""
    for tmp in cell_dir.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def write_failed_record(plan: CellPlan, out_root: str, message: str,
                        seconds: float) -> dict[str, Any]:
    """Record a cell that ended outside its own process (timed out, worker died)."""
    from .provenance import provenance
    results = ResultsDir(Path(plan.out_root or out_root))
    _drop_cut_writes(results.cell_dir(plan.cell_id))
    record = new_record(plan)
    record.update(status="failed", metrics={}, timings={"total_s": seconds},
                  error={"type": "CellAborted", "message": message, "user": False},
                  finished=datetime.now(timezone.utc).isoformat(),
                  provenance=provenance(plan.spec_source))
    results.write_record(plan.cell_id, record)
    return record


def execute_cell(plan: CellPlan, out_root: str, progress_cb: Any = None) -> dict[str, Any]:
    """Execute one cell and write its record atomically; returns the record.

    Whatever the adapters raise (``SystemExit`` and other ``BaseException`` included) is
    recorded as a failed cell; only a real Ctrl-C of this process ends the run.
    """
    import torch

    from .provenance import apply_determinism, provenance
    results = ResultsDir(Path(plan.out_root or out_root))
    if not safe_cell_id(plan.cell_id):
        raise ResultsError(f"unsafe cell id {plan.cell_id!r}: a cell id names one folder "
                           "under cells/", hint="re-derive the cell from its spec")
    cell_dir = results.cell_dir(plan.cell_id)
    if cell_dir.is_symlink():  # never follow a link out of the results folder
        cell_dir.unlink()
    if cell_dir.exists():
        shutil.rmtree(cell_dir / "artifacts", ignore_errors=True)
        _drop_cut_writes(cell_dir)
    flags = apply_determinism(plan.settings["threads"], plan.settings["deterministic"])
    timings: dict[str, float] = {}
    progress = Progress(progress_cb)
    record = new_record(plan)
    t_all, cpu_all = time.perf_counter(), time.process_time()
    try:
        t0 = time.perf_counter()
        data, data_fp = load_data(plan, progress)
        timings["load_s"] = time.perf_counter() - t0
        record["data_fingerprint"] = data_fp
        if data_fp != plan.data_fingerprint:  # the plan's disk-cached fingerprint was stale
            if plan.dataset is not None:
                datacache.store_fingerprint(plan.dataset, plan.data_seed,
                                            Path(plan.cache_dir), data_fp)
            record["identity"] = cell_identity(plan.config, plan.versions, data_fp,
                                               plan.settings)
        ctx = RunContext(seed=plan.seed, device=torch.device(plan.settings["device"]),
                         work_dir=cell_dir / "artifacts", cache_dir=Path(plan.cache_dir),
                         logger=log, progress=progress, label=plan.name,
                         spec_seed=plan.spec_seed,
                         spec_dir=Path(plan.spec_source).resolve().parent
                         if plan.spec_source else None)
        model = None
        if plan.model is not None:
            t0 = time.perf_counter()
            model_ctx = ctx if plan.model_seed == plan.seed else replace(ctx, seed=plan.model_seed)
            model_ctx.seed_globals()
            model = plan.model.build().build(model_ctx, data)
            timings["build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ctx.seed_globals()
        outputs = plan.method.build().run(ctx, data, model) or {}
        timings["run_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = CellResult(data=data, model=model, outputs=outputs)
        metrics, metric_errors = compute_metrics(plan.metrics, ctx, result, cell_dir)
        timings["metrics_s"] = time.perf_counter() - t0
        examples = outputs.get("examples")
        if isinstance(examples, list) and examples:
            atomic_write_jsonl(cell_dir / "examples.jsonl", examples)
        kept = {k: _prune(v) for k, v in outputs.items() if k != "examples"}
        record["outputs"] = {k: v for k, v in kept.items()
                             if v is not _DROP and v != {} and _small(v)}
        record["metrics"] = metrics
        record["status"] = "ok"
        if metric_errors:  # the metrics that worked are kept; the cell re-runs next time
            record.update(status="failed", metric_errors=metric_errors,
                          error=metrics_error(metric_errors))
    except HarnessError as exc:
        record.update(status="failed", metrics={},
                      error={"type": type(exc).__name__, "message": exc.render(), "user": True})
    except ModuleNotFoundError as exc:  # an optional dependency is not installed
        record.update(status="failed", metrics={}, error={
            "type": "MissingDependency", "message": missing_dependency(exc).render(),
            "user": True})
    except BaseException as exc:  # an adapter bug, even sys.exit(): recorded, the sweep goes on
        if isinstance(exc, KeyboardInterrupt) and _INTERRUPTED:
            raise  # a real Ctrl-C: stop the run (finished cells are recorded)
        message = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, Exception):
            message += " (raised by the cell's adapters; a cell cannot end the run)"
        record.update(status="failed", metrics={}, error={
            "type": type(exc).__name__, "message": message,
            "traceback": traceback.format_exc(), "user": False})
    timings["total_s"] = time.perf_counter() - t_all
    timings["cpu_s"] = time.process_time() - cpu_all  # this process's CPU time, all threads
    record["timings"] = timings
    record["finished"] = datetime.now(timezone.utc).isoformat()
    record["provenance"] = provenance(plan.spec_source)
    record["provenance"]["determinism"] = flags
    results.write_record(plan.cell_id, record)
    return record


@dataclass
class RunReport:
    summary: dict[str, Any]
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if any(f.get("error", {}).get("user") for f in self.failed):
            return 2
        if self.failed or not claims_ok(self.summary["claims"]):
            return 1
        return 0


def build_summary(plan: RunPlan) -> dict[str, Any]:
    """The summary of a plan from its cells' records (the spec is not expanded again)."""
    spec = plan.spec
    results = ResultsDir(plan.out_dir)
    cells_out: list[dict[str, Any]] = []
    for cell in plan.cells:
        record = results.read_record(cell.cell_id) or {}
        cfg = cell.config
        cells_out.append({
            "name": cell.name, "id": cell.cell_id, "group": cfg["group"],
            "spec_seed": cell.spec_seed, "seed": cfg["seed"], "axes": cfg["axes"],
            "params": {k: cfg[k] for k in ("dataset", "model", "method")},
            "sweep": cfg["sweep"], "status": record.get("status", "missing"),
            "identity": cell.identity, "metrics": record.get("metrics", {}),
            "error": record.get("error", {}).get("message") if record.get("error") else None,
        })
    aggregates: dict[str, dict[str, Any]] = {}
    for entry in cells_out:
        group = aggregates.setdefault(entry["group"], {})
        for metric, value in entry["metrics"].items():
            group.setdefault(metric, []).append(float(value))
    aggregates = {g: {m: summarize(v) for m, v in ms.items()} for g, ms in aggregates.items()}
    values = spec.axis_values()
    summary: dict[str, Any] = {
        "spec": spec.name, "description": spec.model.description, "spec_source": spec.source,
        "spec_hash": spec.hash(), "seeds": spec.seeds, "adapters": plan.adapters,
        "cells": cells_out, "aggregates": aggregates,
        "claims": evaluate_claims(spec.model.expect, cells_out, values, spec.claim_ids),
        "report": evaluate_report(spec.model.report, cells_out, values),
        "created": datetime.now(timezone.utc).isoformat(),
    }
    if plan.control is not None:
        summary["control"] = plan.control
    summary["superseded"] = supersede.superseded_records(plan.out_dir)
    return summary


def call_hook(hook: Any, name: str, **kwargs: Any) -> None:
    """Call a plugin hook; a hook that raises is reported and the run goes on (the
    registry's guarded hooks name the plugin; this is the net under a raw ``pm.hook``)."""
    if hook is None:
        return
    try:
        getattr(hook, name)(**kwargs)
    except Exception as exc:
        warnings.warn(f"a plugin's {name} hook raised {type(exc).__name__}: {exc}; ignored",
                      stacklevel=2)


def run_plan(plan: RunPlan, *, executor: Any,
             on_event: Callable[[str, dict[str, Any]], None] | None = None,
             hook: Any = None) -> RunReport:
    """Execute the plan's unfinished cells, then write the summary (holding the results
    folder's lock: a second writer exits 2)."""
    return run_plans([plan], executor=executor, on_events=[on_event], hook=hook)[0]


def run_plans(plans: list[RunPlan], *, executor: Any,
              on_events: list[Callable[[str, dict[str, Any]], None] | None] | None = None,
              hook: Any = None) -> list[RunReport]:
    """Run several plans (a spec's controls), each into its own results folder, holding
    every folder's lock. An executor that can write into several folders at once
    (``many_folders``: the built-in ones) gets all their unfinished cells in one call,
    so its workers stay busy and keep their data cache across the plans; any other
    executor runs the plans one after another."""
    events = list(on_events or [None] * len(plans))
    if len(plans) > 1 and not getattr(executor, "many_folders", False):
        return [run_plans([p], executor=executor, on_events=[e], hook=hook)[0]
                for p, e in zip(plans, events, strict=True)]
    with contextlib.ExitStack() as stack:
        for plan in plans:
            stack.enter_context(locked(plan.out_dir))
        return _run_plans(plans, executor, events, hook)


def _run_plans(plans: list[RunPlan], executor: Any,
               on_events: list[Callable[[str, dict[str, Any]], None] | None],
               hook: Any) -> list[RunReport]:
    reports, emits, todo, done = [], [], [], []
    owner: dict[tuple[str, str], int] = {}  # (results folder, cell id) -> plan index
    for i, (plan, on_event) in enumerate(zip(plans, on_events, strict=True)):
        moved = supersede.prepare(plan)  # never overwrite a finished record of another identity
        if plan.adopt_from is not None:  # a control: its unchanged cells come from the main run
            moved["adopted"] = adopt(plan, plan.adopt_from)
        emit = on_event or (lambda kind, info: None)
        emits.append(emit)
        done.append(plan.done)
        reports.append(RunReport(summary={}, skipped=[p.name for p in plan.done]))
        emit("plan", {"todo": len(plan.todo), "done": len(plan.done), "control": plan.control,
                      **moved})
        for cell in plan.todo:
            if len(plans) > 1:
                cell.out_root = str(plan.out_dir)
            owner[(cell.out_root or str(plan.out_dir), cell.cell_id)] = i
            todo.append(cell)
    default_root = str(plans[0].out_dir)
    cache_dir = Path(todo[0].cache_dir) if todo else None
    if cache_dir is not None:
        todo = durations.longest_first(todo, durations.known(cache_dir))
    took: dict[str, float] = {}

    def index_of(cell: CellPlan) -> int:
        return owner.get((cell.out_root or default_root, cell.cell_id), 0)

    def finished(cell: CellPlan, record: dict[str, Any]) -> None:
        i = index_of(cell)
        ResultsDir(plans[i].out_dir).index([record])
        reports[i].ran.append(cell.name)
        if record["status"] != "ok":
            reports[i].failed.append(record)
        else:
            cell.status = "done"
            seconds = record.get("timings", {}).get("total_s")
            if isinstance(seconds, (int, float)):
                took[durations.key(cell.config)] = float(seconds)
        call_hook(hook, "harness_cell_finished", record=record)
        emits[i]("cell", {"plan": cell, "record": record})

    def step(name: str, label: str, done_: int, total: int | None) -> None:
        for emit in emits:  # a step names its cell only: each progress display shows it
            emit("step", {"cell": name, "label": label, "done": done_, "total": total})

    broken: str | None = None
    with sigint_marks_interrupt():
        try:
            executor.run(todo, default_root, finished, step)
        except HarnessError:
            raise
        except Exception as exc:  # an executor plugin's bug: keep what was recorded
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # a full disk, not a bug: the CLI says so and exits 1
            broken = (f"executor {getattr(executor, 'name', '?')!r} failed: "
                      f"{type(exc).__name__}: {exc}")
        finally:
            if cache_dir is not None:
                durations.remember(cache_dir, took)
    for plan, report, skipped in zip(plans, reports, done, strict=True):
        results = ResultsDir(plan.out_dir)
        # keep the index complete for cells skipped this time
        results.index(r for r in (results.read_record(p.cell_id) for p in skipped) if r)
        report.summary = build_summary(plan)
        results.write_summary(report.summary)
    if broken is not None:
        raise HarnessError(broken, hint="the finished cells are recorded and the summary "
                           "written; run again (e.g. with another --executor) to resume")
    for plan, report in zip(plans, reports, strict=True):
        call_hook(hook, "harness_run_finished", summary=report.summary,
                  out_dir=str(plan.out_dir))
    return reports


def run_spec(spec: Spec, out_dir: Path, *, executor: Any, cache_dir: Path, force: bool = False,
             on_event: Callable[[str, dict[str, Any]], None] | None = None,
             hook: Any = None) -> RunReport:
    """Plan ``spec`` into ``out_dir`` and run it (the spec's controls are not run)."""
    plan = make_plan(spec, out_dir, cache_dir, force)
    return run_plan(plan, executor=executor, on_event=on_event, hook=hook)
