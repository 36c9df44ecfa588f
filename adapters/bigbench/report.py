"""``harness report`` section: the model's BIG-bench scores beside human raters and chance.

For every finished ``bigbench/evaluate`` cell: the task's preferred metric on BIG-bench's
0-100 scale (0-1 metrics are multiplied by 100, as BIG-bench's results files do), the
chance level (the task's low score on the same scale), the average and expert human
raters for the same metric (``human_raters.json`` / ``task_human_eval.pkl``), and the
normalized aggregate score (0 = chance, 100 = the metric's maximum) of model and raters.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from harness.results import ResultsDir

from .scoring import RENORMALIZED

COLUMNS = ("task", "model", "shots", "metric", "model score", "chance", "human avg",
           "human expert", "model normalized", "human avg normalized")


def preferred_metric(leaves: list[dict[str, Any]], task: str) -> str:
    preferred = {leaf["preferred_score"] for leaf in leaves}
    if preferred == {"multiple_choice_grade"}:
        return "multiple_choice_grade"
    if len(leaves) == 1 and leaves[0]["name"] == task:
        return leaves[0]["preferred_score"]
    return "normalized_aggregate_score"


def rows(summary: dict[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    results = ResultsDir(out_dir)
    out = []
    for cell in summary["cells"]:
        if cell["status"] != "ok":
            continue
        record = results.read_record(cell["id"]) or {}
        outputs = record.get("outputs", {})
        if "leaves" not in outputs:
            continue
        metrics = cell["metrics"]
        task = outputs["task"]
        metric = preferred_metric(outputs["leaves"], task)
        scale = 100.0 if metric in RENORMALIZED else 1.0
        human = outputs.get("human_raters") or {}
        value = metrics.get(metric)
        low = metrics.get("low_score")
        subset = outputs.get("subset") or []
        label = task + (f" [{', '.join(n.split(':', 1)[-1] for n in subset)}]" if subset
                        else "")
        out.append({
            "task": label, "model": cell["axes"].get("model"), "shots": outputs.get("shots"),
            "metric": metric,
            "model score": None if value is None else value * scale,
            "chance": None if low is None or metric == "normalized_aggregate_score"
            else low * scale,
            "human avg": human.get("average", {}).get(metric),
            "human expert": human.get("expert", {}).get(metric),
            "model normalized": metrics.get("normalized_aggregate_score"),
            "human avg normalized": human.get("average", {}).get("normalized_aggregate_score"),
        })
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.1f}"
    return html.escape(str(v))


def _plot(table: list[dict[str, Any]]) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['task']}\n{r['model']} {r['shots']}-shot" for r in table]
    series = [("model score", "#1f77b4"), ("chance", "#999999"), ("human avg", "#2ca02c"),
              ("human expert", "#d62728")]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(table)), 5))
    width = 0.2
    for k, (key, color) in enumerate(series):
        xs = [i + (k - 1.5) * width for i in range(len(table))]
        ys = [r[key] if r[key] is not None else 0.0 for r in table]
        ax.bar(xs, ys, width, label=key, color=color)
    ax.set_xticks(range(len(table)), labels, fontsize=7, rotation=25, ha="right")
    ax.set_ylabel("preferred metric (BIG-bench 0-100 scale)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="model vs human raters">'


def section(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    if "bigbench/evaluate" not in summary.get("adapters", []):
        return []
    table = rows(summary, Path(out_dir))
    if not table:
        return []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = ""
    for r in table:
        cells = "".join(f"<td>{_fmt(r[c])}</td>" for c in COLUMNS)
        body += f"<tr>{cells}</tr>"
    note = ("<p>Scores on BIG-bench's 0-100 scale; chance is the task's low score "
            "(mean chance of its multiple-choice examples). Human raters from BIG-bench's "
            "human evaluation; they cover the whole task, including subtasks not run here."
            "</p>")
    return [("BIG-bench: model vs human raters and chance",
             note + f"<table><tr>{head}</tr>{body}</table>" + _plot(table))]
