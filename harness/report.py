"""Show results in the terminal (rich tables) and write a static HTML report."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .claims import format_claim_row
from .results import artifact_pngs, atomic_write_text


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.4g}"


def aggregates_table(summary: dict[str, Any], width: int = 200) -> Table:
    metrics = sorted({m for g in summary["aggregates"].values() for m in g})
    longest = max((len(g) for g in summary["aggregates"]), default=10)
    if longest + 22 * len(metrics) > width:  # too wide: one row per group and metric
        return _long_table(summary)
    table = Table(title=f"{summary['spec']}: mean ± std over seeds (n)", title_justify="left")
    table.add_column("group", style="bold")
    for m in metrics:
        table.add_column(m, justify="right")
    for group, ms in sorted(summary["aggregates"].items()):
        row = [escape(group)]
        for m in metrics:
            a = ms.get(m)
            row.append("" if a is None else f"{_num(a['mean'])} ± {_num(a['std'])} ({a['n']})")
        table.add_row(*row)
    return table


def _long_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"{summary['spec']}: aggregates over seeds", title_justify="left")
    for col, just in (("group", "left"), ("metric", "left"), ("mean", "right"),
                      ("std", "right"), ("95% CI", "right"), ("n", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for group, ms in sorted(summary["aggregates"].items()):
        for i, (metric, a) in enumerate(sorted(ms.items())):
            ci = a.get("ci95")
            table.add_row(escape(group) if i == 0 else "", escape(metric), _num(a["mean"]),
                          _num(a["std"]), f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "-",
                          str(a["n"]), end_section=i == len(ms) - 1)
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    console.print(aggregates_table(summary, console.width))
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
        pngs = artifact_pngs(out_dir, cell.get("id"))
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
    atomic_write_text(path, page)
    return path
