"""Run a spec's cells: skip finished ones, execute the rest, record, aggregate, judge claims."""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .adapter import CellResult, Component
from .cells import Cell, axis_values, expand
from .claims import evaluate_claims
from .context import Progress, RunContext
from .errors import HarnessError
from .fingerprint import SCHEME_VERSION, cell_identity, config_hash, fingerprint
from .provenance import apply_determinism, provenance
from .results import ResultsDir, atomic_write_jsonl
from .spec import Spec
from .stats import summarize

RECORD_SCHEMA = 1
MAX_INLINE_OUTPUT = 200_000
log = logging.getLogger("harness")


@dataclass
class CellPlan:
    """Everything needed to execute one cell, picklable for worker processes."""

    cell_id: str
    name: str
    seed: int
    data_seed: int
    model_seed: int
    spec_seed: int
    dataset: Component | None
    model: Component | None
    method: Component
    metrics: list[Component]
    config: dict[str, Any]
    versions: dict[str, str]
    settings: dict[str, Any]
    spec_source: str = ""
    spec_hash: str = ""
    cache_dir: str = ".harness-cache"
    identity: str = ""
    data_fingerprint: str = ""

    @classmethod
    def from_cell(cls, cell: Cell, spec: Spec, cache_dir: Path) -> CellPlan:
        model_seed, seed = (cell.paired_seeds() if spec.model.settings.common_random_numbers
                            else (cell.seed, cell.seed))
        return cls(cell_id=cell.id, name=cell.name, seed=seed, data_seed=cell.data_seed,
                   model_seed=model_seed, spec_seed=cell.spec_seed,
                   dataset=cell.dataset_component, model=cell.model_component,
                   method=cell.method_component, metrics=cell.metrics,
                   config=cell.config(), versions=cell.versions(),
                   settings=spec.model.settings.model_dump(exclude={"jobs"}),
                   spec_source=spec.source,
                   spec_hash=spec.hash(), cache_dir=str(cache_dir))


_DATA_CACHE: dict[tuple[str, int], tuple[Any, str]] = {}


def load_component_data(component: Component, seed: int, like: RunContext) -> Any:
    """Load a dataset component with ``seed``, once per process per (config, seed)."""
    key = (config_hash(component.config()), seed)
    if key not in _DATA_CACHE:
        ctx = RunContext(seed=seed, device=like.device, work_dir=like.work_dir,
                         cache_dir=like.cache_dir, progress=like.progress,
                         label=f"data:{component.label}", spec_seed=like.spec_seed)
        ctx.seed_globals()
        data = component.build().load(ctx)
        _DATA_CACHE[key] = (data, fingerprint(data))
    return _DATA_CACHE[key][0]


def load_data(plan: CellPlan, progress: Progress | None = None) -> tuple[Any, str]:
    """The cell's data and its fingerprint, loaded once per process per (config, seed)."""
    if plan.dataset is None:
        return None, "none"
    like = RunContext(seed=plan.data_seed, device=torch.device(plan.settings["device"]),
                      work_dir=Path(plan.cache_dir) / "scratch", cache_dir=Path(plan.cache_dir),
                      progress=progress or Progress(), spec_seed=plan.spec_seed)
    load_component_data(plan.dataset, plan.data_seed, like)
    return _DATA_CACHE[(config_hash(plan.dataset.config()), plan.data_seed)]


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


def execute_cell(plan: CellPlan, out_root: str, progress_cb: Any = None) -> dict[str, Any]:
    """Execute one cell and write its record atomically; returns the record."""
    results = ResultsDir(Path(out_root))
    cell_dir = results.cell_dir(plan.cell_id)
    if cell_dir.exists():
        shutil.rmtree(cell_dir / "artifacts", ignore_errors=True)
    flags = apply_determinism(plan.settings["threads"], plan.settings["deterministic"])
    started = datetime.now(timezone.utc).isoformat()
    timings: dict[str, float] = {}
    progress = Progress(progress_cb)
    record: dict[str, Any] = {
        "schema": RECORD_SCHEMA, "hash_scheme": SCHEME_VERSION, "cell_id": plan.cell_id,
        "identity": plan.identity, "status": "running", "cell": plan.config,
        "versions": plan.versions, "settings": plan.settings, "spec_source": plan.spec_source,
        "spec_hash": plan.spec_hash, "started": started,
    }
    t_all, cpu_all = time.perf_counter(), time.process_time()
    try:
        t0 = time.perf_counter()
        data, data_fp = load_data(plan, progress)
        timings["load_s"] = time.perf_counter() - t0
        record["data_fingerprint"] = data_fp
        ctx = RunContext(seed=plan.seed, device=torch.device(plan.settings["device"]),
                         work_dir=cell_dir / "artifacts", cache_dir=Path(plan.cache_dir),
                         logger=log, progress=progress, label=plan.name,
                         spec_seed=plan.spec_seed)
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
        metrics: dict[str, float] = {}
        result = CellResult(data=data, model=model, outputs=outputs)
        for metric in plan.metrics:
            ctx.seed_globals()
            for key, value in (metric.build().compute(ctx, result) or {}).items():
                metrics[key] = float(value)
        timings["metrics_s"] = time.perf_counter() - t0
        examples = outputs.get("examples")
        if isinstance(examples, list) and examples:
            atomic_write_jsonl(cell_dir / "examples.jsonl", examples)
        kept = {k: _prune(v) for k, v in outputs.items() if k != "examples"}
        record["outputs"] = {k: v for k, v in kept.items()
                             if v is not _DROP and v != {} and _small(v)}
        record["metrics"] = metrics
        record["status"] = "ok"
    except HarnessError as exc:
        record.update(status="failed", metrics={},
                      error={"type": type(exc).__name__, "message": exc.render(), "user": True})
    except Exception as exc:  # an adapter bug: recorded, the sweep goes on
        record.update(status="failed", metrics={}, error={
            "type": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}",
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
        if self.failed or not all(c["passed"] for c in self.summary["claims"]):
            return 1
        return 0


def plan_cells(spec: Spec, out_dir: Path, cache_dir: Path,
               force: bool = False) -> tuple[list[CellPlan], list[CellPlan]]:
    """(to run, already done): a cell is done when its record is ok with the same identity."""
    results = ResultsDir(out_dir)
    todo, done = [], []
    for cell in expand(spec):
        plan = CellPlan.from_cell(cell, spec, cache_dir)
        try:
            _, plan.data_fingerprint = load_data(plan)
        except Exception:  # let the executor record the failure properly
            plan.data_fingerprint = "unloadable"
        plan.identity = cell_identity(plan.config, plan.versions, plan.data_fingerprint,
                                      plan.settings)
        record = None if force else results.read_record(plan.cell_id)
        if record and record.get("status") == "ok" and record.get("identity") == plan.identity:
            done.append(plan)
        else:
            todo.append(plan)
    return todo, done


def build_summary(spec: Spec, out_dir: Path) -> dict[str, Any]:
    results = ResultsDir(out_dir)
    cells_out: list[dict[str, Any]] = []
    for cell in expand(spec):
        record = results.read_record(cell.id) or {}
        cells_out.append({
            "name": cell.name, "id": cell.id, "group": cell.group, "spec_seed": cell.spec_seed,
            "seed": cell.seed, "axes": cell.axes,
            "params": {k: cell.config()[k] for k in ("dataset", "model", "method")},
            "sweep": cell.point.values, "status": record.get("status", "missing"),
            "metrics": record.get("metrics", {}),
            "error": record.get("error", {}).get("message") if record.get("error") else None,
        })
    aggregates: dict[str, dict[str, Any]] = {}
    for entry in cells_out:
        group = aggregates.setdefault(entry["group"], {})
        for metric, value in entry["metrics"].items():
            group.setdefault(metric, []).append(float(value))
    aggregates = {g: {m: summarize(v) for m, v in ms.items()} for g, ms in aggregates.items()}
    claims = evaluate_claims(spec.model.expect, cells_out, axis_values(spec))
    return {
        "spec": spec.name, "description": spec.model.description, "spec_source": spec.source,
        "spec_hash": spec.hash(), "seeds": spec.seeds,
        "adapters": sorted({u for c in expand(spec) for u in c.versions()}),
        "cells": cells_out, "aggregates": aggregates, "claims": claims,
        "created": datetime.now(timezone.utc).isoformat(),
    }


def run_spec(spec: Spec, out_dir: Path, *, executor: Any, cache_dir: Path, force: bool = False,
             on_event: Callable[[str, dict[str, Any]], None] | None = None,
             hook: Any = None) -> RunReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = ResultsDir(out_dir)
    todo, done = plan_cells(spec, out_dir, cache_dir, force)
    report = RunReport(summary={}, skipped=[p.name for p in done])
    emit = on_event or (lambda kind, info: None)
    emit("plan", {"todo": len(todo), "done": len(done)})

    def finished(plan: CellPlan, record: dict[str, Any]) -> None:
        results.index([record])
        report.ran.append(plan.name)
        if record["status"] != "ok":
            report.failed.append(record)
        if hook is not None:
            hook.harness_cell_finished(record=record)
        emit("cell", {"plan": plan, "record": record})

    executor.run(todo, str(out_dir), finished, lambda name, label, done_, total:
                 emit("step", {"cell": name, "label": label, "done": done_, "total": total}))
    # keep the index complete for cells skipped this time
    results.index(r for r in (results.read_record(p.cell_id) for p in done) if r)
    summary = build_summary(spec, out_dir)
    results.write_summary(summary)
    if hook is not None:
        hook.harness_run_finished(summary=summary, out_dir=str(out_dir))
    report.summary = summary
    return report
