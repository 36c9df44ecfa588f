"""``harness plan``: a spec's cells, which are done, which would run, and how long it takes.

Also the command-line cell filters shared with ``harness run``: ``--only axis=value,...``
(repeatable: a cell matching any one runs) and ``--limit N`` (examples per split, part of
each cell's identity).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from statistics import mean
from typing import TYPE_CHECKING, Any

import yaml

from .errors import HarnessError
from .selectors import fmt

if TYPE_CHECKING:
    from .plan import CellPlan, RunPlan
    from .spec import Spec

_PAIR_SPLIT = re.compile(r",(?=\s*[A-Za-z_][\w.-]*\s*=)")


def parse_only(texts: list[str] | None, spec: Spec) -> list[dict[str, Any]] | None:
    """``["dataset=wine,lr=0.01", ...]`` as selectors, each axis and value checked."""
    if not texts:
        return None
    values = spec.axis_values()
    selectors: list[dict[str, Any]] = []
    for text in texts:
        selector: dict[str, Any] = {}
        for pair in _PAIR_SPLIT.split(text):
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise HarnessError(f"--only {text!r}: {pair!r} is not AXIS=VALUE",
                                   hint="e.g. --only dataset=wine,lr=0.01")
            if key not in values:
                close = difflib.get_close_matches(key, list(values), n=3)
                raise HarnessError(
                    f"--only {text!r}: unknown axis {key!r}",
                    hint=(f"did you mean {', '.join(map(repr, close))}? " if close else "")
                    + "axes: " + ", ".join(sorted(values)))
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
            if fmt(value) not in values[key] and raw.strip() in values[key]:
                value = raw.strip()
            if fmt(value) not in values[key]:
                close = difflib.get_close_matches(fmt(value), sorted(values[key]), n=3)
                raise HarnessError(
                    f"--only {text!r}: {key} has no value {raw.strip()!r}",
                    hint=(f"did you mean {', '.join(map(repr, close))}? " if close else "")
                    + f"{key} takes: " + ", ".join(sorted(values[key])))
            selector[key] = value
        selectors.append(selector)
    return selectors


def check_limit(limit: int | None) -> int | None:
    if limit is not None and limit < 1:
        raise HarnessError(f"--limit {limit}: give a positive number of examples per split",
                           hint="e.g. --limit 100 for a quick look")
    return limit


def default_out(spec_name: str, limit: int | None, base: Path = Path("results")) -> Path:
    """``results/<spec>``; a ``--limit`` run goes to ``results/<spec>-limit<N>``."""
    return base / (f"{spec_name}-limit{limit}" if limit else spec_name)


def _past_times(records: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Wall times of finished records by cell id, group and method adapter."""
    out: dict[str, dict[str, list[float]]] = {"cell": {}, "group": {}, "method": {}}
    for rec in records:
        took = rec.get("timings", {}).get("total_s")
        if rec.get("status") != "ok" or not isinstance(took, (int, float)):
            continue
        cell = rec.get("cell", {})
        method = (cell.get("method") or {}).get("use", "")
        limit = rec.get("settings", {}).get("limit")
        for kind, key in (("cell", rec.get("cell_id", "")), ("group", cell.get("group", "")),
                          ("method", f"{method}|{limit}")):
            out[kind].setdefault(str(key), []).append(float(took))
    return out


def estimate(cell: CellPlan, past: dict[str, dict[str, list[float]]]) -> tuple[float, str] | None:
    """A cell's expected wall time and where the figure comes from."""
    method = f"{cell.method.use}|{cell.settings.get('limit')}"
    for kind, key, what in (("cell", cell.cell_id, "this cell's last record"),
                            ("group", cell.group, "same group, other seeds"),
                            ("method", method, f"cells of {cell.method.use}")):
        times = past[kind].get(key)
        if times:
            return mean(times), what
    return None


def plan_rows(plan: RunPlan) -> dict[str, Any]:
    """The plan as data: one row per cell (status, estimate), and totals."""
    from .results import ResultsDir
    records = ResultsDir(plan.out_dir).records() if (plan.out_dir / "cells").is_dir() else []
    past = _past_times(records)
    rows = []
    total, unknown = 0.0, 0
    for cell in plan.cells:
        est = estimate(cell, past)
        if cell.status != "done":
            if est is None:
                unknown += 1
            else:
                total += est[0]
        rows.append({"cell": cell.name, "id": cell.cell_id, "group": cell.group,
                     "status": cell.status, "axes": cell.config["axes"],
                     "estimate_s": None if est is None else est[0],
                     "estimate_from": None if est is None else est[1]})
    return {"spec": plan.spec.name, "out_dir": str(plan.out_dir), "cells": rows,
            "done": len(plan.done), "todo": len(plan.todo), "estimate_s": total,
            "unestimated": unknown, "limit": plan.cells[0].settings.get("limit")}


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def print_plan(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table
    limit = f" (--limit {data['limit']} examples per split)" if data["limit"] else ""
    table = Table(title=f"{data['spec']}: {len(data['cells'])} cells, {data['done']} done, "
                  f"{data['todo']} to run -> {data['out_dir']}{limit}", title_justify="left")
    for col, just in (("status", "left"), ("cell", "left"), ("time", "right"),
                      ("estimated from", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in data["cells"]:
        est = row["estimate_s"]
        status = "done" if row["status"] == "done" else "run"
        time = "-" if est is None else ("" if status == "done" else "~") + _duration(est)
        table.add_row(status, row["cell"], time, row["estimate_from"] or "no past record")
    console.print(table)
    if not data["todo"]:
        console.print("nothing to run: every cell is done (--force re-runs them)")
        return
    known = data["todo"] - data["unestimated"]
    parts = []
    if known:
        parts.append(f"~{_duration(data['estimate_s'])} for {known} cell(s)")
    if data["unestimated"]:
        parts.append(f"unknown for {data['unestimated']} cell(s) with no past record")
    console.print(f"estimated time to run {data['todo']} cell(s), one at a time: "
                  + ", ".join(parts) + " (from the wall times of the folder's records)")
