"""Show results in the terminal (rich tables) and write a static HTML report."""

from __future__ import annotations

import base64
import fnmatch
import html
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .claims import format_claim_row


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.4g}"


def claimed_metrics(summary: dict[str, Any]) -> list[str]:
    """The metrics the claims and report rows name, in the spec's order."""
    out: list[str] = []
    for item in [*summary.get("claims", []), *summary.get("report", [])]:
        names = [item.get("metric")] + [r.get("vs_metric") for r in item.get("groups", [])]
        out += [n for n in names if n and n not in out]
    return out


def select_metrics(summary: dict[str, Any], pattern: str | None = None
                   ) -> tuple[list[str], list[str]]:
    """(metrics to show, metrics left out). Default: the claimed metrics first and only
    them when the spec has claims; ``pattern`` (comma-separated globs, ``all``) picks."""
    present = sorted({m for g in summary["aggregates"].values() for m in g})
    if pattern:
        globs = ["*" if p.strip() == "all" else p.strip() for p in pattern.split(",")]
        shown = [m for m in present if any(fnmatch.fnmatchcase(m, g) for g in globs)]
    else:
        claimed = [m for m in claimed_metrics(summary) if m in present]
        shown = claimed or present
    return shown, [m for m in present if m not in shown]


def _std(a: dict[str, Any]) -> str:
    return "-" if a.get("n", 0) < 2 else _num(a["std"])


def aggregates_table(summary: dict[str, Any], metrics: list[str] | None = None) -> Table:
    """One row per group and metric: the same layout on a terminal and in a pipe."""
    metrics = metrics if metrics is not None else select_metrics(summary)[0]
    table = Table(title=f"{summary['spec']}: aggregates over seeds", title_justify="left")
    for col, just in (("group", "left"), ("metric", "left"), ("mean", "right"),
                      ("std", "right"), ("95% CI", "right"), ("n", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for group, ms in sorted(summary["aggregates"].items()):
        rows = [(m, ms[m]) for m in metrics if m in ms]
        for i, (metric, a) in enumerate(rows):
            ci = a.get("ci95")
            table.add_row(escape(group) if i == 0 else "", escape(metric), _num(a["mean"]),
                          _std(a), f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "-",
                          str(a["n"]), end_section=i == len(rows) - 1)
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None,
                  metrics: str | None = None) -> None:
    """Aggregates (the claimed metrics unless ``metrics`` picks), cells that failed, claims,
    report rows and the falsification table."""
    console = console or Console()
    shown, hidden = select_metrics(summary, metrics)
    console.print(aggregates_table(summary, shown))
    if hidden:
        console.print(f"{len(hidden)} more metric(s) not shown ({', '.join(hidden[:6])}"
                      f"{', ...' if len(hidden) > 6 else ''}): --metrics 'PATTERN' or "
                      "--metrics all shows them", highlight=False)
    failed = [c for c in summary["cells"] if c["status"] != "ok"]
    for cell in failed:
        console.print(f"[red]cell {escape(cell['name'])}: {cell['status']}[/red]"
                      + (f" — {escape(cell['error'])}" if cell.get("error") else ""),
                      highlight=False, markup=True)
    if summary["claims"]:
        console.print("[bold]claims[/bold]", markup=True)
    for claim in summary["claims"]:
        status = claim_status(claim)
        mark = f"[{STATUS_STYLE[status]}]{status}[/{STATUS_STYLE[status]}]"
        cid = escape(f"[{claim['id']}] ") if claim.get("id") else ""
        console.print(f"  {mark} {cid}{escape(claim['text'])}", highlight=False, markup=True)
        if claim.get("xfail"):
            console.print(f"       xfail: {escape(claim['xfail'])}", highlight=False,
                          markup=True)
        for row in claim["groups"]:
            console.print(f"       {escape(format_claim_row(row, claim['quantity']))}",
                          highlight=False, markup=True)
        if claim.get("reason"):
            console.print(f"       {escape(claim['reason'])}", highlight=False, markup=True)
    if summary.get("report"):
        console.print("[bold]reported (not claims)[/bold]", markup=True)
    for item in summary.get("report", []):
        console.print(f"  {escape(item['text'])}", highlight=False, markup=True)
        for row in item["groups"]:
            console.print(f"       {escape(format_claim_row(row, item['quantity']))}",
                          highlight=False, markup=True)
    if summary.get("controls"):
        print_controls(summary["controls"], console)


STATUS_STYLE = {"PASS": "green", "FAIL": "red", "XFAIL": "yellow", "XPASS": "red"}


def claim_status(claim: dict[str, Any]) -> str:
    return str(claim.get("status") or ("PASS" if claim["passed"] else "FAIL"))


def controls_table(table: dict[str, Any]) -> Table:
    """The falsification table: one row per claim, one column per control."""
    out = Table(title="falsification: each claim under each control (* = must fail)",
                title_justify="left")
    out.add_column("claim", style="bold")
    for col in table["controls"]:
        out.add_column(escape(col["name"]), justify="center")
    out.add_column("verdict")
    for cid, verdict in table["verdicts"].items():
        row = [escape(cid)]
        for col in table["controls"]:
            cell = col["claims"].get(cid, "n/a")
            row.append(cell + ("*" if cid in col["must_fail"] else ""))
        row.append(verdict["verdict"])
        out.add_row(*row)
    return out


def print_controls(table: dict[str, Any], console: Console) -> None:
    console.print(controls_table(table))
    for col in table["controls"]:
        if col.get("text"):
            console.print(f"  {escape(col['name'])}: {escape(col['text'])}", highlight=False,
                          markup=True)
    for problem in table["problems"]:
        console.print(f"  [red]problem:[/red] {escape(problem)}", highlight=False, markup=True)
    if table["ok"]:
        console.print("  every claim is falsified by a control; every must_fail claim fails",
                      highlight=False)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def _controls_html(table: dict[str, Any]) -> str:
    esc = html.escape
    head = "".join(f"<th title='{esc(c.get('text', ''))}'>{esc(c['name'])}</th>"
                   for c in table["controls"])
    body = ""
    for cid, verdict in table["verdicts"].items():
        cells = "".join(
            f"<td class='{c['claims'].get(cid, 'n/a').lower().replace('/', '')}'>"
            f"{esc(c['claims'].get(cid, 'n/a'))}{'*' if cid in c['must_fail'] else ''}</td>"
            for c in table["controls"])
        body += f"<tr><th>{esc(cid)}</th>{cells}<td>{esc(verdict['verdict'])}</td></tr>"
    problems = "".join(f"<li>{esc(p)}</li>" for p in table["problems"])
    return ("<h2>Controls: falsification table</h2><p>Each claim under each control "
            "(* = the control must make it fail).</p><div class='scroll'><table id='controls'>"
            f"<tr><th>claim</th>{head}<th>verdict</th></tr>{body}</table></div>"
            + (f"<ul class='problems'>{problems}</ul>" if problems else ""))


def write_html(summary: dict[str, Any], out_dir: Path,
               extra_sections: list[tuple[str, str]] | None = None) -> Path:
    esc = html.escape
    parts = [f"<h1>{esc(summary['spec'])}</h1><p>{esc(summary.get('description', ''))}</p>"]
    parts.append("<h2>Claims</h2><ul id='claims'>")
    for claim in summary["claims"]:
        status = claim_status(claim)
        rows = "".join(f"<li>{esc(format_claim_row(r, claim['quantity']))}</li>"
                       for r in claim["groups"])
        xfail = f"<li>xfail: {esc(claim['xfail'])}</li>" if claim.get("xfail") else ""
        cid = f"[{esc(claim['id'])}] " if claim.get("id") else ""
        parts.append(f'<li class="{status.lower()}"><b>{status}</b> {cid}{esc(claim["text"])}'
                     f"<ul>{xfail}{rows}</ul></li>")
    parts.append("</ul>")
    if summary.get("report"):
        parts.append("<h2>Reported (not claims)</h2><ul>")
        for item in summary["report"]:
            rows = "".join(f"<li>{esc(format_claim_row(r, item['quantity']))}</li>"
                           for r in item["groups"])
            parts.append(f"<li>{esc(item['text'])}<ul>{rows}</ul></li>")
        parts.append("</ul>")
    if summary.get("controls"):
        parts.append(_controls_html(summary["controls"]))
    parts.append("<h2>Aggregates (mean ± std, n)</h2>")
    metrics = sorted({m for g in summary["aggregates"].values() for m in g})
    head = "".join(f"<th>{esc(m)}</th>" for m in metrics)
    body = ""
    for group, ms in sorted(summary["aggregates"].items()):
        cells = "".join(
            f"<td>{_num(ms[m]['mean'])} ± {_num(ms[m]['std'])} ({ms[m]['n']})</td>"
            if m in ms else "<td></td>" for m in metrics)
        body += f"<tr><th>{esc(group)}</th>{cells}</tr>"
    parts.append(f"<table><tr><th>group</th>{head}</tr>{body}</table>")
    for title, section in extra_sections or []:
        parts.append(f"<h2>{esc(title)}</h2>{section}")
    parts.append("<h2>Artifacts</h2>")
    for cell in summary["cells"]:
        art = out_dir / "cells" / cell["id"] / "artifacts"
        pngs = sorted(art.glob("*.png")) if art.is_dir() else []
        if pngs:
            parts.append(f"<h3>{esc(cell['name'])}</h3>" + "".join(_img(p) for p in pngs))
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px}"
             ".pass b{color:green}.fail b{color:#b00}img{max-width:560px}"
             "figure{display:inline-block;margin:4px}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(summary['spec'])}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}"
            f"<script type='application/json' id='summary'>"
            f"{esc(json.dumps(summary['aggregates']))}</script></body></html>")
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
