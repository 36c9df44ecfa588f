"""Return-curve plots (matplotlib, Agg backend), written as cell artifacts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def plot_curves(path: Path, curves: Mapping[str, Sequence[Sequence[float]]], *, title: str,
                xlabel: str, ylabel: str = "evaluation return",
                hline: float | None = None, hline_label: str = "optimal",
                logy: bool = False) -> Path:
    """One line per named curve of ``[x, y]`` points; an optional reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, points in curves.items():
        if points:
            xs, ys = zip(*[(p[0], p[1]) for p in points], strict=True)
            ax.plot(xs, ys, label=label, linewidth=1.2)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle="--", linewidth=1, label=hline_label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
