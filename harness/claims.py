"""Evaluate a spec's ``expect:`` claims and ``report:`` rows on per-cell metrics.

A claim's status is PASS or FAIL; a claim marked ``xfail`` is XFAIL when it fails (as
expected) and XPASS when it passes, which fails the run (pytest's strict xfail), so the
marker gets removed once the claim reproduces.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from .selectors import matches, normalize_selector
from .specmodel import BOUND_OPS, Claim, Measure, ReportItem
from .stats import summarize

_CMP = {"at_least": operator.ge, "at_most": operator.le, "above": operator.gt,
        "below": operator.lt}


def _passes(value: float | None, ops: list[tuple[str, float]]) -> bool:
    if value is None or math.isnan(value):
        return False
    return all(_CMP[op](value, thr) for op, thr in ops)


def _quantity(kind: str, lhs: float | None, rhs: float | None) -> float | None:
    if lhs is None or rhs is None:
        return None
    if kind == "diff":
        return lhs - rhs
    if rhs == 0:
        return math.inf if lhs > 0 else (-math.inf if lhs < 0 else math.nan)
    return lhs / rhs


def _groups(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for cell in cells:
        g = groups.setdefault(cell["group"], {"axes": cell["axes"], "cells": {}})
        g["cells"][cell["spec_seed"]] = cell
    return groups


def _series(group: dict[str, Any], metric: str) -> dict[int, float | None]:
    out: dict[int, float | None] = {}
    for seed, cell in group["cells"].items():
        # a failed cell has no metrics, or those computed before another metric failed
        value = cell.get("metrics", {}).get(metric)
        out[seed] = None if value is None else float(value)
    return out


def _find_partner(groups: dict[str, dict[str, Any]], axes: dict[str, Any],
                  lhs: dict[str, Any], rhs: dict[str, Any]) -> str | None:
    # the point's name is implied by the sweep keys: pair on those, not on the name
    want = {k: v for k, v in axes.items() if k not in lhs and (k != "point" or "point" in rhs)}
    want.update(rhs)
    for name, g in groups.items():
        if matches(g["axes"], {k: v for k, v in want.items() if v is not None}) and all(
                g["axes"].get(k) is None for k, v in want.items() if v is None):
            return name
    return None


def measure(entry: Measure, quantity: str, cells: list[dict[str, Any]],
            values: dict[str, set[str]], ops: list[tuple[str, float]] | None = None,
            min_seeds: int | None = None) -> list[dict[str, Any]]:
    """One row per group that ``entry`` selects: the value it measures (mean over seeds, or
    per seed) and, given ``ops``, whether it is within those bounds."""
    ops = ops or []
    groups = _groups(cells)
    where = normalize_selector(entry.where, values)
    lhs_sel = {**where, **normalize_selector(entry.lhs, values)}
    rhs_sel = normalize_selector(entry.rhs, values)
    rows: list[dict[str, Any]] = []
    for name, group in sorted(groups.items()):
        if not matches(group["axes"], lhs_sel):
            continue
        lhs = _series(group, entry.metric)
        rhs: dict[int, float | None] = {}
        partner = None
        if entry.vs_metric is not None:
            rhs = _series(group, entry.vs_metric)
        elif quantity != "value":
            partner = _find_partner(groups, group["axes"], normalize_selector(entry.lhs, values),
                                    rhs_sel)
            if partner is None:
                rows.append({"group": name, "passed": False,
                             "reason": f"no group matches rhs {entry.rhs!r} beside {name}"})
                continue
            rhs = _series(groups[partner], entry.metric)
        row: dict[str, Any] = {"group": name}
        if partner is not None:
            row["vs"] = partner
        if entry.vs_metric is not None:
            row["vs_metric"] = entry.vs_metric
        if entry.on == "mean":
            complete = all(v is not None for v in lhs.values()) and all(
                v is not None for v in rhs.values())
            lm = summarize([v for v in lhs.values() if v is not None])["mean"]
            if quantity == "value":
                value = lm
            else:
                rm = summarize([v for v in rhs.values() if v is not None])["mean"]
                row["rhs_mean"] = rm
                value = _quantity(quantity, lm, rm)
            row["lhs_mean"] = lm
            row["value"] = value
            row["passed"] = complete and _passes(value, ops)
            if not complete:
                missing = entry.metric if any(v is None for v in lhs.values()) else (
                    entry.vs_metric or entry.metric)
                row["reason"] = f"metric {missing!r} missing in some cells"
        else:
            per_seed: dict[str, Any] = {}
            passed = 0
            for seed, lv in sorted(lhs.items()):
                v = lv if quantity == "value" else _quantity(quantity, lv, rhs.get(seed))
                ok = _passes(v, ops)
                passed += ok
                per_seed[str(seed)] = {"value": v, "passed": ok}
            need = min_seeds or len(lhs)
            row.update({"per_seed": per_seed, "seeds_passed": passed, "seeds_needed": need,
                        "passed": passed >= need})
        rows.append(row)
    return rows


def claim_status(passed: bool, xfail: str | None) -> str:
    if xfail:
        return "XPASS" if passed else "XFAIL"
    return "PASS" if passed else "FAIL"


def evaluate_claim(claim: Claim, cells: list[dict[str, Any]],
                   values: dict[str, set[str]], claim_id: str | None = None) -> dict[str, Any]:
    quantity, ops = claim.bounds()
    rows = measure(claim, quantity, cells, values, ops, claim.min_seeds)
    passed = bool(rows) and all(r["passed"] for r in rows)
    result: dict[str, Any] = {"id": claim_id or claim.id or claim.derived_id(),
                              "text": claim.describe(), "metric": claim.metric,
                              "quantity": quantity, "on": claim.on,
                              "bounds": {op: thr for op, thr in ops},
                              "passed": passed, "status": claim_status(passed, claim.xfail),
                              "groups": rows}
    if claim.xfail:
        result["xfail"] = claim.xfail
    if not rows:
        result["reason"] = "no group matched this claim"
        result["matched"] = False
    return result


def evaluate_claims(spec_claims: list[Claim], cells: list[dict[str, Any]],
                    values: dict[str, set[str]],
                    ids: list[str] | None = None) -> list[dict[str, Any]]:
    ids = ids or [c.id or c.derived_id() for c in spec_claims]
    results = [evaluate_claim(c, cells, values, i)
               for c, i in zip(spec_claims, ids, strict=True)]
    _apply_requires(spec_claims, results)
    return results


def _apply_requires(spec_claims: list[Claim], results: list[dict[str, Any]]) -> None:
    """A claim with ``requires:`` passes only if its own bound holds and each required claim
    passes (resolved in dependency order; the spec check rejects unknown ids and circles)."""
    if not any(c.requires for c in spec_claims):
        return
    by_id = {r["id"]: r for r in results}
    claim_of = {r["id"]: c for c, r in zip(spec_claims, results, strict=True)}
    own = {r["id"]: r["passed"] for r in results}
    done: dict[str, bool] = {}

    def resolve(cid: str, seen: frozenset[str]) -> bool:
        if cid not in done:
            needs = [q for q in claim_of[cid].requires if q in by_id and q not in seen]
            done[cid] = own[cid] and all(resolve(q, seen | {cid}) for q in needs)
        return done[cid]

    for result in results:
        resolve(result["id"], frozenset())
    for claim, result in zip(spec_claims, results, strict=True):
        result["passed"] = done[result["id"]]
        result["status"] = claim_status(result["passed"], claim.xfail)
    for claim, result in zip(spec_claims, results, strict=True):
        if not claim.requires:
            continue
        result["requires"] = {q: by_id[q]["status"] for q in claim.requires if q in by_id}
        failed = [q for q in claim.requires if q in by_id and not by_id[q]["passed"]]
        if own[result["id"]] and failed:
            result["reason"] = ("its own bound holds, but it requires " + ", ".join(
                f"{q!r} ({by_id[q]['status']})" for q in failed))


def evaluate_report(items: list[ReportItem], cells: list[dict[str, Any]],
                    values: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The report-only rows: numbers shown beside the claims, never judged."""
    out = []
    for item in items:
        rows = measure(item, item.as_, cells, values)
        for row in rows:
            row.pop("passed", None)
            for seed in row.get("per_seed", {}).values():
                seed.pop("passed", None)
            row.pop("seeds_passed", None)
            row.pop("seeds_needed", None)
        out.append({"id": item.id or item.derived_id(), "text": item.describe(),
                    "metric": item.metric, "quantity": item.as_, "on": item.on,
                    "groups": rows})
    return out


def claims_ok(claims: list[dict[str, Any]]) -> bool:
    """True when every claim is PASS or XFAIL."""
    return all(c.get("status", "PASS" if c["passed"] else "FAIL") in ("PASS", "XFAIL")
               for c in claims)


def format_claim_row(row: dict[str, Any], quantity: str) -> str:
    if "reason" in row and "value" not in row and "per_seed" not in row:
        return f"{row['group']}: {row['reason']}"
    vs = f" vs {row['vs']}" if "vs" in row else (
        f" ({row['vs_metric']})" if "vs_metric" in row else "")
    if "per_seed" in row:
        vals = ", ".join(f"{_num(v['value'])}{'✗' if v.get('passed') is False else ''}"
                         for v in row["per_seed"].values())
        text = f"{row['group']}{vs}: {quantity} per seed [{vals}]"
        if "seeds_passed" in row:
            text += (f" — {row['seeds_passed']}/{len(row['per_seed'])} pass, "
                     f"need {row['seeds_needed']}")
        return text
    if quantity == "value":
        return f"{row['group']}: mean {_num(row['value'])}"
    return (f"{row['group']}{vs}: {_num(row['lhs_mean'])} vs {_num(row['rhs_mean'])}"
            f" -> {quantity} {_num(row['value'])}")


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4g}"


__all__ = ["BOUND_OPS", "claims_ok", "evaluate_claims", "evaluate_report", "format_claim_row"]
