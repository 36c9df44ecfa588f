"""``harness compare A B``: two results folders side by side.

Per group and metric: mean ± std (n) in each folder, the difference ``B - A`` and whether
the 95% intervals overlap; then every claim of either folder with its status in both.
Groups and claims match by name and id; one present in only one folder shows ``-`` for
the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import HarnessError
from .report import claim_status, select_metrics


def _overlap(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    """``yes``/``no`` when both intervals exist; ``n/a`` with fewer than two seeds."""
    if not a or not b or not a.get("ci95") or not b.get("ci95"):
        return "n/a"
    (alo, ahi), (blo, bhi) = a["ci95"], b["ci95"]
    return "yes" if max(alo, blo) <= min(ahi, bhi) else "no"


def _diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    if not a or not b or a.get("mean") is None or b.get("mean") is None:
        return None
    return float(b["mean"]) - float(a["mean"])


def compare(a: dict[str, Any], b: dict[str, Any], pattern: str | None = None
            ) -> dict[str, Any]:
    """The comparison as data (``--json`` prints it)."""
    shown_a, hidden_a = select_metrics(a, pattern)
    shown_b, hidden_b = select_metrics(b, pattern)
    metrics = shown_a + [m for m in shown_b if m not in shown_a]
    hidden = sorted({*hidden_a, *hidden_b} - set(metrics))
    rows = []
    groups = sorted({*a["aggregates"], *b["aggregates"]})
    for group in groups:
        for metric in metrics:
            ma = a["aggregates"].get(group, {}).get(metric)
            mb = b["aggregates"].get(group, {}).get(metric)
            if ma is None and mb is None:
                continue
            rows.append({"group": group, "metric": metric, "a": ma, "b": mb,
                         "diff": _diff(ma, mb), "overlap": _overlap(ma, mb)})
    claims_a = {c["id"]: c for c in a.get("claims", [])}
    claims_b = {c["id"]: c for c in b.get("claims", [])}
    claims = []
    for cid in [*claims_a, *(c for c in claims_b if c not in claims_a)]:
        ca, cb = claims_a.get(cid), claims_b.get(cid)
        sa = claim_status(ca) if ca else "-"
        sb = claim_status(cb) if cb else "-"
        claims.append({"id": cid, "text": (ca or cb or {}).get("text", ""), "a": sa, "b": sb,
                       "changed": sa != sb})
    return {"a": {"spec": a["spec"], "spec_hash": a.get("spec_hash")},
            "b": {"spec": b["spec"], "spec_hash": b.get("spec_hash")},
            "rows": rows, "claims": claims, "hidden_metrics": hidden}


def _cell(agg: dict[str, Any] | None) -> str:
    from .report import _num, _std
    if not agg:
        return "-"
    return f"{_num(agg['mean'])} ± {_std(agg)} ({agg['n']})"


def print_compare(data: dict[str, Any], dir_a: str, dir_b: str, console: Any) -> None:
    from rich.table import Table

    from .report import _num
    console.print(f"A = {dir_a} ({data['a']['spec']})\nB = {dir_b} ({data['b']['spec']})")
    if data["a"]["spec_hash"] != data["b"]["spec_hash"]:
        console.print("note: the two folders come from different specs (or --set/--seeds); "
                      "groups and claims are matched by name")
    table = Table(title="mean ± std (n) over seeds; diff = B - A; overlap of the 95% intervals",
                  title_justify="left")
    for col, just in (("group", "left"), ("metric", "left"), ("A", "right"), ("B", "right"),
                      ("diff", "right"), ("overlap", "center")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    last = None
    for row in data["rows"]:
        table.add_row(str(row["group"]) if row["group"] != last else "",
                      str(row["metric"]), _cell(row["a"]), _cell(row["b"]),
                      _num(row["diff"]), row["overlap"])
        last = row["group"]
    console.print(table)
    if data["hidden_metrics"]:
        console.print(f"{len(data['hidden_metrics'])} more metric(s) not shown: "
                      "--metrics 'PATTERN' or --metrics all shows them")
    if data["claims"]:
        claims = Table(title="claims", title_justify="left")
        for col in ("claim", "A", "B", ""):
            claims.add_column(col)
        for c in data["claims"]:
            claims.add_row(str(c["id"]), c["a"], c["b"], "changed" if c["changed"] else "")
        console.print(claims)


def load_pair(dir_a: str, dir_b: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from .results import ResultsDir
    if Path(dir_a).resolve() == Path(dir_b).resolve():
        raise HarnessError(f"compare: A and B are the same folder ({dir_a})",
                           hint="give two results folders, e.g. results/x results/x-limit100")
    return ResultsDir(Path(dir_a)).summary(), ResultsDir(Path(dir_b)).summary()
