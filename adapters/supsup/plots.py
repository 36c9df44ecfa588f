"""The two plots a reader of the SupSup paper looks for (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _plt() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_per_task(path: Path, after: list[float], final: list[float],
                  gn: list[float] | None, title: str) -> None:
    """Accuracy per task: right after learning it, after the last task (GG), and GN."""
    plt = _plt()
    tasks = list(range(len(final)))
    fig, ax = plt.subplots(figsize=(min(14.0, max(5.0, 0.35 * len(tasks) + 2)), 3.6))
    marks = len(tasks) <= 60
    ax.plot(tasks, after, "o-" if marks else "-", label="just after learning the task")
    ax.plot(tasks, final, "s-" if marks else "-", label="after the last task (task given, GG)")
    if gn is not None:
        ax.plot(tasks, gn, "^--" if marks else "--",
                label="after the last task (task inferred, GN)")
    ax.set_xlabel("task")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curve(path: Path, curve: list[dict[str, Any]], label: str) -> None:
    """Task-inference accuracy against the number of tasks learned."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot([c["tasks"] for c in curve], [c["task_inference_accuracy"] for c in curve], "o-")
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("task-inference accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
