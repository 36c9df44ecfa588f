"""Compute a cell's metrics one by one: a metric that raises loses only its own numbers.

Each failing metric is recorded with its error (``record["metric_errors"]``) and, for an
adapter bug, its traceback in ``cells/<id>/metric-errors/<n>-<metric>.txt``; the metrics
computed before and after it are kept. A name that an earlier metric already produced is
an error of the later metric (the first value is kept), never a silent overwrite.
"""

from __future__ import annotations

import re
import shutil
import traceback
from pathlib import Path
from typing import Any

from .adapter import CellResult, Component
from .context import RunContext
from .errors import HarnessError
from .extras import missing_dependency

ERRORS_DIR = "metric-errors"


def _numbers(got: Any) -> dict[str, float]:
    if not isinstance(got, dict):
        raise TypeError(f"compute() returned {type(got).__name__}, not a dict of numbers")
    return {str(k): float(v) for k, v in got.items()}


def compute_metrics(metrics: list[Component], ctx: RunContext, result: CellResult,
                    cell_dir: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(the numbers every metric that worked returned, one error entry per metric that
    raised or repeated a name)."""
    shutil.rmtree(cell_dir / ERRORS_DIR, ignore_errors=True)
    values: dict[str, float] = {}
    errors: list[dict[str, Any]] = []
    for i, metric in enumerate(metrics):
        entry = {"metric": metric.label, "index": i}
        ctx.seed_globals()
        try:
            got = _numbers(metric.build().compute(ctx, result) or {})
        except HarnessError as exc:
            errors.append({**entry, "type": type(exc).__name__, "message": exc.render(),
                           "user": True})
            continue
        except ModuleNotFoundError as exc:
            errors.append({**entry, "type": "MissingDependency",
                           "message": missing_dependency(exc).render(), "user": True})
            continue
        except Exception as exc:  # an adapter bug: its traceback goes to a file
            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric.label)[:60]
            path = cell_dir / ERRORS_DIR / f"{i}-{slug}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            trace = traceback.format_exc()
            path.write_text(trace, encoding="utf-8")
            errors.append({**entry, "type": type(exc).__name__,
                           "message": f"{type(exc).__name__}: {exc}", "traceback_file": str(path),
                           "traceback": trace, "user": False})
            continue
        repeated = sorted(k for k in got if k in values)
        if repeated:
            errors.append({**entry, "type": "DuplicateMetric", "user": True,
                           "message": f"produces {repeated}, already produced by an earlier "
                           "metric of this cell (the first value is kept)"})
        values.update({k: v for k, v in got.items() if k not in values})
    return values, errors


def metrics_error(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The cell's ``error`` for failed metrics: one line per metric, where its traceback is."""
    lines = []
    for e in errors:
        where = f" (traceback: {e['traceback_file']})" if e.get("traceback_file") else ""
        first, *rest = str(e["message"]).splitlines() or [""]
        lines.append(f"metric {e['metric']!r} failed: {first}{where}")
        lines += [f"  {r.strip()}" for r in rest]
    kept = "; the other metrics were kept"
    out = {"type": "MetricError", "message": lines[0] + kept + "".join(
        "\n" + line for line in lines[1:]), "user": all(e["user"] for e in errors)}
    traces = [e["traceback"] for e in errors if e.get("traceback")]
    if traces:
        out["traceback"] = "\n".join(traces)
    return out
