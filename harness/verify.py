"""Re-execute every recorded cell from its record and compare the metrics bit for bit."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from .adapter import Component
from .errors import ResultsError, SpecError, SpecErrors
from .plan import CellPlan
from .registry import Registry
from .results import ResultsDir
from .runner import execute_cell
from .spec import Resolver
from .yamlfile import Located


def _component(resolver: Resolver, config: Any, kind: str, where: str) -> Component | None:
    if config is None:
        return None
    comp = resolver.resolve(config, (where,), kind)
    if comp is None:
        raise SpecErrors(resolver.errors or [SpecError(f"cannot rebuild {where}")])
    return comp


def plan_from_record(record: dict[str, Any], registry: Registry, cache_dir: Path) -> CellPlan:
    cell = record["cell"]
    crn = record["settings"].get("common_random_numbers", False)
    model_seed, seed = cell["paired_seeds"] if crn else (cell["seed"], cell["seed"])
    resolver = Resolver(registry, Located({}, {}, f"record of {cell['name']}"), {})
    metrics = [_component(resolver, m, "metric", f"metrics[{i}]")
               for i, m in enumerate(cell.get("metrics", []))]
    return CellPlan(
        cell_id=record["cell_id"], name=cell["name"], seed=seed, model_seed=model_seed,
        spec_seed=cell["spec_seed"],
        data_seed=cell["data_seed"],
        dataset=_component(resolver, cell.get("dataset"), "dataset", "dataset"),
        model=_component(resolver, cell.get("model"), "model", "model"),
        method=_component(resolver, cell["method"], "method", "method"),  # type: ignore[arg-type]
        metrics=[m for m in metrics if m is not None], config=cell,
        versions=record.get("versions", {}), settings=record["settings"],
        spec_source=record.get("spec_source", ""), spec_hash=record.get("spec_hash", ""),
        cache_dir=str(cache_dir), identity=record["identity"])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def verify(out_dir: Path, registry: Registry, cache_dir: Path,
           on_cell: Any = None) -> list[dict[str, Any]]:
    """Per cell and metric: recorded value, new value, identical or the difference."""
    results = ResultsDir(out_dir)
    if not (out_dir / "cells").is_dir():
        raise ResultsError(f"no cell records in {out_dir}",
                           hint="give the --out folder of a `harness run`")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="harness-verify-") as tmp:
        for record in results.records():
            if record.get("status") != "ok":
                continue
            plan = plan_from_record(record, registry, cache_dir)
            new = execute_cell(plan, tmp)
            new_metrics = new.get("metrics", {})
            for metric, old in sorted(record.get("metrics", {}).items()):
                value = new_metrics.get(metric)
                same = value is not None and _same(old, value)
                diff = None
                if not same and isinstance(old, (int, float)) and isinstance(value, (int, float)):
                    diff = value - old
                rows.append({"cell": plan.name, "metric": metric, "recorded": old,
                             "rerun": value, "identical": same, "diff": diff,
                             "error": new.get("error", {}).get("message")})
            if on_cell is not None:
                on_cell(plan.name)
    return rows
