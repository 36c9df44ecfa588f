"""Re-execute every recorded cell and compare the metrics bit for bit.

Records are untrusted input (a results folder may come from anywhere): each is checked
against the record schema (:func:`harness.results.record_problem`); its folder name must
be a plain cell id; the cell is re-derived from the SPEC (``--spec``, else the summary's
``spec_source`` when that file still has the recorded hash) and a record whose cell does
not match the spec's is reported, not run. Only when no spec is available is the cell
rebuilt from the record itself, through the installed adapters, and then a cell naming
code (an adapter's ``code_params``) needs ``--trust-code``. Cells are re-executed in a
temporary folder: verify writes nothing in the results folder.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from .adapter import Component
from .errors import HarnessError, ResultsError, SpecError, SpecErrors
from .plan import CellPlan
from .registry import Registry
from .results import ResultsDir, safe_cell_id
from .runner import execute_cell
from .spec import Resolver
from .trust import require_trust
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


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def spec_cells(out_dir: Path, registry: Registry, cache_dir: Path,
               spec_path: str | None) -> dict[str, CellPlan] | None:
    """The cells of the spec the folder was run from, by id; None when no spec is known."""
    from .cells import expand
    from .spec import load_spec
    summary_path = out_dir / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.is_file():
        try:
            loaded = json.loads(summary_path.read_text(encoding="utf-8"))
            summary = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            summary = {}
    seeds = summary.get("seeds")
    seeds = seeds if isinstance(seeds, list) and all(
        isinstance(s, int) and not isinstance(s, bool) for s in seeds) else None
    if spec_path is None:
        source = summary.get("spec_source")
        if not isinstance(source, str) or not source or not Path(source).is_file():
            return None
        try:
            spec = load_spec(source, registry, seeds=seeds)
        except HarnessError:
            return None
        if spec.hash() != summary.get("spec_hash"):  # changed since, or run with --set
            return None
    else:
        spec = load_spec(spec_path, registry, seeds=seeds)
    return {c.id: CellPlan.from_cell(c, spec, cache_dir) for c in expand(spec)}


def verify(out_dir: Path, registry: Registry, cache_dir: Path, on_cell: Any = None, *,
           spec: str | None = None, trust_code: bool = False) -> list[dict[str, Any]]:
    """Per cell and metric: recorded value, new value, identical or the difference."""
    results = ResultsDir(out_dir)
    cells_dir = out_dir / "cells"
    if not cells_dir.is_dir() or cells_dir.is_symlink():
        raise ResultsError(f"no cell records in {out_dir}",
                           hint="give the --out folder of a `harness run`")
    from_spec = spec_cells(out_dir, registry, cache_dir, spec)
    rows: list[dict[str, Any]] = []
    todo: list[tuple[dict[str, Any], CellPlan]] = []

    def problem(name: str, message: str) -> None:
        rows.append({"cell": name, "metric": "-", "recorded": None, "rerun": None,
                     "identical": False, "diff": None, "error": message})

    for folder in sorted(cells_dir.iterdir()):
        if not folder.is_dir() or folder.is_symlink() or not safe_cell_id(folder.name):
            continue
        record = results.read_record(folder.name)  # schema-checked; corrupt ones set aside
        if record is None or record.get("status") != "ok":
            continue
        name = str(record["cell"]["name"])
        if from_spec is not None:
            plan = from_spec.get(folder.name)
            if plan is None:
                problem(name, "this record's cell is not in the spec; not re-run")
                continue
            if _canon(plan.config) != _canon(record["cell"]):
                problem(name, "this record's cell differs from the spec's (an edited record?);"
                        " not re-run")
                continue
            plan.identity = record["identity"]
            limit = record.get("settings", {}).get("limit")  # `--limit N`: a run option,
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
                plan.settings["limit"] = limit  # not in the spec: the record says it
        else:
            try:
                plan = plan_from_record(record, registry, cache_dir)
            except (HarnessError, KeyError, TypeError, ValueError) as exc:
                problem(name, f"cannot rebuild the cell from its record: {exc}")
                continue
            plan.cell_id = folder.name
        todo.append((record, plan))
    require_trust([p for _, p in todo], trust_code, str(out_dir))
    with tempfile.TemporaryDirectory(prefix="harness-verify-") as tmp:
        for record, plan in todo:
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
