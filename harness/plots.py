"""The harness's own report plots: each claimed metric against each swept param.

For every swept param (an axis of the cells besides dataset, model, method and point)
and every claimed metric (every metric when the spec claims none), one figure: the
metric's mean over seeds against the param's values, with the 95% interval as error
bars (none with one seed), one line per combination of the other axes. Numeric params
get a numeric x axis (logarithmic when positive and spanning 10x or more); other
values (lists, names) are categories in the spec's order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .selectors import AXES, fmt

PLOTS_DIR = "plots"
MAX_METRICS = 8


def swept_axes(summary: dict[str, Any]) -> list[str]:
    """The swept params' axis names, in the order the cells give them."""
    names: list[str] = []
    for cell in summary.get("cells", []):
        for key in cell.get("axes", {}):
            if key not in AXES and key not in names:
                names.append(key)
    return [n for n in names
            if len({fmt(c["axes"].get(n)) for c in summary["cells"] if n in c["axes"]}) > 1]


def series(summary: dict[str, Any], axis: str, metric: str
           ) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Line label -> [(param value, aggregate)] for one param and metric."""
    seen: set[str] = set()
    lines: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for cell in summary.get("cells", []):
        group = cell["group"]
        if group in seen or axis not in cell.get("axes", {}):
            continue
        seen.add(group)
        agg = summary["aggregates"].get(group, {}).get(metric)
        if not agg or agg.get("mean") is None:
            continue
        axes = cell["axes"]
        others = [f"{k}={fmt(v)}" if k not in AXES else str(v)
                  for k, v in axes.items() if k not in (axis, "point") and v is not None]
        lines.setdefault(" / ".join(others) or "all", []).append((axes[axis], agg))
    return lines


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60]


def draw(summary: dict[str, Any], out_dir: Path, metrics: list[str]) -> list[Path]:
    """Write the figures under ``out_dir/plots/``; their paths."""
    axes = swept_axes(summary)
    if not axes or not metrics:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder = out_dir / PLOTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for axis in axes:
        for metric in metrics[:MAX_METRICS]:
            lines = series(summary, axis, metric)
            if not lines:
                continue
            values = [v for pts in lines.values() for v, _ in pts]
            numeric = _numeric(values)
            order = [] if numeric else list(dict.fromkeys(fmt(v) for v in values))
            fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=90)
            for label, pts in sorted(lines.items()):
                pts = sorted(pts, key=lambda p: p[0] if numeric else order.index(fmt(p[0])))
                xs = [p[0] if numeric else order.index(fmt(p[0])) for p in pts]
                ys = [p[1]["mean"] for p in pts]
                cis = [p[1].get("ci95") or [y, y] for y, p in zip(ys, pts, strict=True)]
                err = [[y - lo for y, (lo, _) in zip(ys, cis, strict=True)],
                       [hi - y for y, (_, hi) in zip(ys, cis, strict=True)]]
                ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
            if numeric and min(values) > 0 and max(values) / min(values) >= 10:
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(range(len(order)), order)
            ax.set_xlabel(axis)
            ax.set_ylabel(metric)
            ax.set_title(f"{metric} vs {axis} (mean, 95% CI over seeds)", fontsize=10)
            ax.grid(alpha=0.3)
            if len(lines) > 1:
                ax.legend(fontsize=7, loc="best")
            fig.tight_layout()
            path = folder / f"{_slug(metric)}-vs-{_slug(axis)}.png"
            fig.savefig(path)
            plt.close(fig)
            paths.append(path)
    return paths
