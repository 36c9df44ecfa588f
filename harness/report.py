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


_STYLE = """
*{box-sizing:border-box}
body{font-family:sans-serif;max-width:1200px;margin:0 auto;padding:0 12px;overflow-wrap:anywhere}
.scroll{max-width:100%;overflow-x:auto;margin:8px 0}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;white-space:nowrap}
td.text{white-space:normal;min-width:16em}
tr.pass td.status{color:green}tr.fail td.status,tr.xpass td.status{color:#b00}
tr.xfail td.status{color:#a60}
figure{display:inline-block;margin:4px;max-width:100%;vertical-align:top}
img{max-width:100%;height:auto}
"""

# Fills data-images / data-fit on <body> once the page has loaded: what a browser check
# (tests/test_report.py, headless Chromium) reads back from the DOM.
_CHECK = """window.addEventListener('load',function(){var b=document.body;
b.setAttribute('data-images',JSON.stringify(Array.prototype.map.call(document.images,
function(i){return [i.alt,i.naturalWidth,i.naturalHeight];})));
b.setAttribute('data-fit',String(document.documentElement.scrollWidth<=window.innerWidth));});"""


def _claims_html(summary: dict[str, Any]) -> str:
    esc = html.escape
    rows = ""
    for claim in summary["claims"]:
        status = claim_status(claim)
        numbers = "<br>".join(esc(format_claim_row(r, claim["quantity"]))
                              for r in claim["groups"])
        if claim.get("reason"):
            numbers += ("<br>" if numbers else "") + esc(claim["reason"])
        xfail = f"<br><i>xfail: {esc(claim['xfail'])}</i>" if claim.get("xfail") else ""
        rows += (f"<tr class='{status.lower()}'><td class='status'><b>{status}</b></td>"
                 f"<td>{esc(claim.get('id') or '')}</td><td class='text'>"
                 f"{esc(claim['text'])}{xfail}</td><td class='text'>{numbers}</td></tr>")
    return ("<h2>Claims</h2><div class='scroll'><table id='claims'><tr><th>status</th>"
            f"<th>id</th><th>claim</th><th>numbers</th></tr>{rows}</table></div>")


def _aggregates_html(summary: dict[str, Any]) -> str:
    esc = html.escape
    metrics = [*select_metrics(summary)[0], *select_metrics(summary)[1]]
    head = "".join(f"<th>{esc(m)}</th>" for m in metrics)
    body = ""
    for group, ms in sorted(summary["aggregates"].items()):
        cells = "".join(f"<td>{_num(ms[m]['mean'])} ± {_std(ms[m])} ({ms[m]['n']})</td>"
                        if m in ms else "<td></td>" for m in metrics)
        body += f"<tr><th>{esc(group)}</th>{cells}</tr>"
    return ("<h2>Aggregates (mean ± std, n)</h2><div class='scroll'><table id='aggregates'>"
            f"<tr><th>group</th>{head}</tr>{body}</table></div>")


def _pngs(folder: Path) -> list[Path]:
    """The folder's PNG files, symlinks left out (a results folder is not trusted)."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [p for p in sorted(folder.glob("*.png")) if p.is_file() and not p.is_symlink()]


def write_html(summary: dict[str, Any], out_dir: Path,
               extra_sections: list[tuple[str, str]] | None = None) -> Path:
    """``out_dir/report.html``: claims, report rows, controls, aggregates, the harness's
    plots (each claimed metric against each swept param), the adapters' sections and
    every cell's PNG artifacts; one self-contained file that fits the browser window."""
    from .plots import draw
    from .results import artifact_pngs, atomic_write_text
    esc = html.escape
    parts = [f"<h1>{esc(summary['spec'])}</h1><p>{esc(summary.get('description') or '')}</p>",
             _claims_html(summary)]
    if summary.get("report"):
        parts.append("<h2>Reported (not claims)</h2><ul>")
        for item in summary["report"]:
            rows = "".join(f"<li>{esc(format_claim_row(r, item['quantity']))}</li>"
                           for r in item["groups"])
            parts.append(f"<li>{esc(item['text'])}<ul>{rows}</ul></li>")
        parts.append("</ul>")
    if summary.get("controls"):
        parts.append(_controls_html(summary["controls"]))
    parts.append(_aggregates_html(summary))
    shown, _ = select_metrics(summary)
    plots = draw(summary, out_dir, shown)
    if plots:
        parts.append("<h2>Metrics against the swept params</h2>"
                     + "".join(_img(p) for p in plots))
    for title, section in extra_sections or []:
        parts.append(f"<h2>{esc(title)}</h2><div class='scroll'>{section}</div>")
    artifacts = []
    for cell in summary["cells"]:
        pngs = artifact_pngs(out_dir, cell.get("id"))
        if pngs:
            artifacts.append(f"<h3>{esc(cell['name'])}</h3>" + "".join(_img(p) for p in pngs))
    if artifacts:
        parts.append("<h2>Artifacts</h2>" + "".join(artifacts))
    page = (f"<!doctype html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(summary['spec'])}</title><style>{_STYLE}</style></head>"
            f"<body>{''.join(parts)}"
            f"<script type='application/json' id='summary'>"
            f"{esc(json.dumps(summary['aggregates']))}</script>"
            f"<script>{_CHECK}</script></body></html>")
    path = out_dir / "report.html"
    atomic_write_text(path, page)
    return path
