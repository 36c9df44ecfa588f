"""Figures: clean test accuracy (and noisy share) against backward-passed examples.

``harness report DIR`` calls :func:`report_sections` through the plugin's
``harness_report_sections`` hook: for every dataset of the spec, one panel with one line per
method (mean over seeds of the largest budget the spec ran it at), from the ``curve.json``
files the ``prioritization/curve`` metric wrote. The PNGs land in ``DIR`` and are embedded
in the HTML report. ``python -m harness_adapters.prioritization.plots DIR`` draws them alone.
"""

from __future__ import annotations

import base64
import html
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

ACCURACY_PNG = "prioritization-accuracy.png"
SHARE_PNG = "prioritization-noisy-share.png"


def _plt() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_cell(curve: dict[str, Any], path: Path) -> None:
    """One cell's accuracy (and noisy share) against backward passes."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(curve["backward"], curve["test_accuracy"], label="clean test accuracy")
    if "noisy_share" in curve:
        ax.plot(curve["share_backward"], curve["noisy_share"], label="noisy share of backprops")
    ax.set_xlabel("backward-passed examples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


LENGTH_KEYS = ("backward_budget", "steps", "epochs")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.rsplit("/", 1)[-1]


def line_label(cell: dict[str, Any]) -> str:
    """A cell's line: its method and sweep values, training length left out."""
    axes = cell["axes"]
    parts = [f"{_short(v)}" for k, v in axes.items()
             if k not in ("dataset", "model", "method", "point") and k not in LENGTH_KEYS]
    return " ".join([axes["method"], *parts]) if parts else axes["method"]


def load_curves(summary: dict[str, Any], out_dir: Path
                ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """dataset -> line label -> the curves of its seeds (the longest run of each line)."""
    found: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    for cell in summary.get("cells", []):
        path = out_dir / "cells" / cell["id"] / "artifacts" / "curve.json"
        if cell.get("status") != "ok" or not path.is_file():
            continue
        curve = json.loads(path.read_text(encoding="utf-8"))
        axes = cell["axes"]
        found[(axes["dataset"], line_label(cell))][axes.get("point") or ""].append(curve)
    out: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for (dataset, label), by_point in found.items():
        def reach(curves: list[dict[str, Any]]) -> float:
            return float(np.mean([c["backward"][-1] for c in curves if c["backward"]] or [0]))
        out[dataset][label] = by_point[max(by_point, key=lambda p: reach(by_point[p]))]
    return out


def _mean_line(curves: list[dict[str, Any]], xkey: str, ykey: str
               ) -> tuple[np.ndarray, np.ndarray] | None:
    usable = [c for c in curves if c.get(xkey) and c.get(ykey)]
    if not usable:
        return None
    top = min(c[xkey][-1] for c in usable)
    grid = np.linspace(min(c[xkey][0] for c in usable), top, 200)
    ys = [np.interp(grid, c[xkey], c[ykey]) for c in usable]
    return grid, np.mean(ys, axis=0)


def draw(curves: dict[str, dict[str, list[dict[str, Any]]]], out_dir: Path) -> list[Path]:
    plt = _plt()
    written: list[Path] = []
    for fname, xkey, ykey, ylabel in (
            (ACCURACY_PNG, "backward", "test_accuracy", "clean test accuracy"),
            (SHARE_PNG, "share_backward", "noisy_share", "noisy share of backprops")):
        datasets = [d for d in sorted(curves)
                    if any(_mean_line(cs, xkey, ykey) for cs in curves[d].values())]
        if not datasets:
            continue
        cols = min(4, len(datasets))
        rows = math.ceil(len(datasets) / cols)
        fig, axs = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
        for ax, dataset in zip(axs.flat, datasets, strict=False):
            for label, cs in sorted(curves[dataset].items()):
                line = _mean_line(cs, xkey, ykey)
                if line is not None:
                    ax.plot(*line, label=f"{label} (n={len(cs)})")
            ax.set_title(dataset, fontsize=9)
            ax.set_xlabel("backward-passed examples", fontsize=8)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="lower right")
        for ax in list(axs.flat)[len(datasets):]:
            ax.axis("off")
        fig.tight_layout()
        path = out_dir / fname
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    if "prioritization/curve" not in summary.get("adapters", []):
        return []
    paths = draw(load_curves(summary, Path(out_dir)), Path(out_dir))
    if not paths:
        return []
    body = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"'
        f' alt="{html.escape(p.name)}"><figcaption>{html.escape(p.name)}: mean over seeds'
        "</figcaption></figure>" for p in paths)
    return [("Loss-based prioritization: accuracy and noisy share vs backward passes", body)]


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m harness_adapters.prioritization.plots RESULTS_DIR")
        return 2
    out = Path(args[0])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for path in draw(load_curves(summary, out), out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
