"""``harness report`` section: per-language table and accuracy by language and k.

For every finished ``xlingual/icl`` group: per language and k, for the claims' rule (the
``rule`` of ``xlingual/metrics``, default ``direct_cal``) the mean over seeds of accuracy,
balanced accuracy and its interval, the majority rate and the prediction counts; and a plot
of balanced accuracy by language, one series per k, with the chance and majority lines.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import ResultsDir

from . import metrics

STATS = ("accuracy", "balanced_accuracy", "bacc_ci_low", "bacc_ci_high", "majority_rate")


def rows(summary: dict[str, Any], out_dir: Path) -> list[dict[str, Any]]:
    """One row per (group, language, k, rule), every rule, recomputed from each cell's
    ``examples.jsonl`` (the metric reports only the claims' rule), mean over seeds."""
    results = ResultsDir(out_dir)
    acc: dict[tuple[str, str, int, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list))
    for cell in summary.get("cells", []):
        method = (cell.get("params") or {}).get("method") or {}
        if cell.get("status") != "ok" or method.get("use") != "xlingual/icl":
            continue
        record = results.read_record(cell["id"]) or {}
        path = results.cell_dir(cell["id"]) / "examples.jsonl"
        outputs = record.get("outputs", {})
        if not path.is_file() or "labels" not in outputs:
            continue
        examples = [json.loads(line) for line in path.read_text().splitlines() if line]
        t = metrics.table(examples, outputs["labels"], outputs.get("rules", []),
                          np.random.default_rng(0), 1000, 0.95)
        for key, value in t.items():
            lang, k, rule, stat = key.split(".", 3)
            acc[cell["group"], lang, int(k[1:]), rule][stat].append(float(value))
    out = []
    for (group, lang, k, r), stats in acc.items():
        row: dict[str, Any] = {"group": group, "language": lang, "k": k, "rule": r}
        for s, vals in stats.items():
            row[s] = sum(vals) / len(vals)
        row["seeds"] = len(stats.get("accuracy", []))
        out.append(row)
    return out


def _counts(row: dict[str, Any]) -> str:
    return ", ".join(f"{k[5:]} {v:.0f}" for k, v in sorted(row.items())
                     if k.startswith("pred.") and v)


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def render_table(table: list[dict[str, Any]]) -> str:
    head = ("group", "language", "k", "rule", "accuracy", "balanced acc", "95% CI",
            "majority rate", "predictions (mean over seeds)")
    body = ""
    for r in table:
        ci = f"[{r.get('bacc_ci_low', 0):.2f}, {r.get('bacc_ci_high', 0):.2f}]"
        cells = [r["group"], r["language"], r["k"], r["rule"], r.get("accuracy"),
                 r.get("balanced_accuracy"), ci, r.get("majority_rate"), _counts(r)]
        body += "<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + "</tr>"
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + body
            + "</table>")


def plot(table: list[dict[str, Any]], rule: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mine = [r for r in table if r["rule"] == rule]
    groups = sorted({r["group"] for r in mine})
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 3.2 * max(1, len(groups))),
                             squeeze=False)
    for ax, group in zip(axes[:, 0], groups, strict=True):
        rs = [r for r in mine if r["group"] == group]
        langs = list(dict.fromkeys(r["language"] for r in rs))
        ks = sorted({r["k"] for r in rs})
        width = 0.8 / max(1, len(ks))
        for j, k in enumerate(ks):
            by = {r["language"]: r for r in rs if r["k"] == k}
            xs = [i + (j - (len(ks) - 1) / 2) * width for i in range(len(langs))]
            ys = [by[x].get("balanced_accuracy", 0.0) if x in by else 0.0 for x in langs]
            ax.bar(xs, ys, width, label=f"k={k} balanced acc")
            acc = [by[x].get("accuracy", 0.0) if x in by else 0.0 for x in langs]
            ax.scatter(xs, acc, color="black", marker="x", s=14,
                       label="accuracy" if j == 0 else None)
        chance = rs[0].get("chance")
        major = rs[0].get("majority_rate")
        if chance:
            ax.axhline(chance, color="gray", linestyle="--", label=f"chance {chance:.2f}")
        if major:
            ax.axhline(major, color="red", linestyle=":", label=f"majority {major:.2f}")
        ax.set_xticks(range(len(langs)), langs)
        ax.set_ylim(0, 1)
        ax.set_title(f"{group}: {rule}", fontsize=9)
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="accuracy by language and k">'


def section(summary: dict[str, Any], out_dir: str,
            rule: str = "direct_cal") -> list[tuple[str, str]]:
    if "xlingual/icl" not in summary.get("adapters", []):
        return []
    table = rows(summary, Path(out_dir))
    if not table:
        return []
    note = (f"<p>Plot: rule <code>{rule}</code> (the claims' rule, fixed in advance for "
            "every language). Table: every rule, means over seeds; the interval is the mean "
            "of the per-seed bootstrap bounds; predictions are mean counts per label.</p>")
    return [("Cross-lingual in-context learning (per language)",
             note + plot(table, rule) + render_table(table))]
