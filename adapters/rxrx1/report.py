"""Report section for ``rxrx1/benchmark`` runs (the ``harness_report_sections`` hook):
unseen-experiment accuracy per correction with 95% intervals over seeds (PNG), a table
of accuracy, in-distribution accuracy, gap share and batch probe per correction, and the
embeddings figure of the first seed's cell (coloured by experiment, per correction)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

ACCURACY_PNG = "rxrx1-accuracy.png"


def _corrections(agg: dict[str, Any]) -> list[str]:
    return [k.split(".", 1)[1] for k in agg if k.startswith("unseen_acc.") and k.count(".") == 1]


def plot_accuracy(agg: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _corrections(agg)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(names) + 2), 3.4))
    for i, (key, label) in enumerate((("unseen_acc", "unseen experiments"),
                                      ("id_acc", "in-distribution"))):
        means, errs = [], [[], []]
        for n in names:
            a = agg.get(f"{key}.{n}", {})
            m = a.get("mean") or 0.0
            lo, hi = a.get("ci95") or (m, m)
            means.append(m)
            errs[0].append(m - lo)
            errs[1].append(hi - m)
        xs = [j + (i - 0.5) * 0.38 for j in range(len(names))]
        ax.bar(xs, means, width=0.38, yerr=errs, capsize=2, label=label)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("top-1 accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{data}" style="max-width:100%"></figure>'


def _fmt(a: dict[str, Any] | None) -> str:
    if not a or a.get("mean") is None:
        return "-"
    ci = a.get("ci95")
    return f"{a['mean']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    out = Path(out_dir)
    sections = []
    for group, agg in summary.get("aggregates", {}).items():
        names = _corrections(agg)
        if not names:
            continue
        png = out / f"{group.replace('/', '_')}-{ACCURACY_PNG}"
        plot_accuracy(agg, png, f"{group}: accuracy per correction (95% CI over seeds)")
        rows = "".join(
            f"<tr><td>{html.escape(n)}</td>" + "".join(
                f"<td>{_fmt(agg.get(f'{k}.{n}'))}</td>"
                for k in ("unseen_acc", "id_acc", "drop", "gap_share", "probe")) + "</tr>"
            for n in names)
        table = ("<table><tr><th>correction</th><th>unseen</th><th>in-distribution</th>"
                 "<th>drop</th><th>gap share</th><th>batch probe</th></tr>" + rows + "</table>")
        body = _img(png) + table
        cells = [c for c in summary.get("cells", []) if c.get("group") == group
                 and c.get("status") == "ok"]
        for cell in sorted(cells, key=lambda c: c.get("spec_seed", 0))[:1]:
            emb = out / "cells" / cell["id"] / "artifacts" / "embeddings.png"
            if emb.is_file():
                body += "<p>Embeddings (PCA) coloured by experiment, seed " \
                        f"{cell.get('spec_seed')}:</p>" + _img(emb)
        sections.append((f"RxRx1 batch correction: {group}", body))
    return sections
