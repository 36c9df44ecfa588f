"""Evaluate a spec's ``expect:`` claims on per-cell metrics and their aggregates."""

from __future__ import annotations

import difflib
import math
import operator
from typing import Any

from .cells import axis_values, matches
from .errors import SpecError
from .spec import Spec
from .specmodel import BOUND_OPS, Claim
from .stats import summarize

_CMP = {"at_least": operator.ge, "at_most": operator.le, "above": operator.gt,
        "below": operator.lt}


def normalize_selector(sel: Any, values: dict[str, set[str]]) -> dict[str, Any]:
    """A selector as a dict; a bare name is looked up among the axes' names."""
    if sel is None:
        return {}
    if isinstance(sel, dict):
        return sel
    hits = [axis for axis in ("dataset", "model", "method", "point") if str(sel) in values[axis]]
    if len(hits) != 1:
        raise ValueError(f"{sel!r} names {'no' if not hits else 'more than one'} "
                         "dataset, model, method or sweep point")
    return {hits[0]: str(sel)}


def check_claim_selectors(spec: Spec) -> None:
    values = axis_values(spec)
    errors: list[SpecError] = []
    for i, claim in enumerate(spec.model.expect):
        for key in ("where", "lhs", "rhs"):
            sel = getattr(claim, key)
            path = ("expect", i, key)
            try:
                sel = normalize_selector(sel, values)
            except ValueError as exc:
                pool = sorted(set().union(*values.values()))
                close = difflib.get_close_matches(str(sel), pool, n=1)
                errors.append(SpecError(str(exc), location=spec.doc.where(path),
                                        path=f"expect[{i}].{key}",
                                        hint=f"did you mean {close[0]!r}?" if close else None))
                continue
            for axis, want in sel.items():
                if axis not in values:
                    close = difflib.get_close_matches(axis, list(values), n=1)
                    errors.append(SpecError(
                        f"unknown axis {axis!r} in selector", location=spec.doc.where(path),
                        path=f"expect[{i}].{key}.{axis}",
                        hint=f"did you mean {close[0]!r}?" if close else
                        "axes: " + ", ".join(values)))
                    continue
                for w in (want if isinstance(want, list) else [want]):
                    if str(w) not in values[axis] and not any(
                            _same(w, v) for v in values[axis]):
                        close = difflib.get_close_matches(str(w), sorted(values[axis]), n=1)
                        errors.append(SpecError(
                            f"no {axis} named {w!r}", location=spec.doc.where(path),
                            path=f"expect[{i}].{key}.{axis}",
                            hint=f"did you mean {close[0]!r}?" if close else
                            f"{axis} names: " + ", ".join(sorted(values[axis]))))
    if errors:
        from .errors import SpecErrors
        raise SpecErrors(errors)


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


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
        value = cell.get("metrics", {}).get(metric) if cell.get("status") == "ok" else None
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


def evaluate_claim(claim: Claim, cells: list[dict[str, Any]],
                   values: dict[str, set[str]]) -> dict[str, Any]:
    quantity, ops = claim.bounds()
    groups = _groups(cells)
    where = normalize_selector(claim.where, values)
    lhs_sel = {**where, **normalize_selector(claim.lhs, values)}
    rhs_sel = normalize_selector(claim.rhs, values)
    rows: list[dict[str, Any]] = []
    for name, group in sorted(groups.items()):
        if not matches(group["axes"], lhs_sel):
            continue
        lhs = _series(group, claim.metric)
        rhs: dict[int, float | None] = {}
        partner = None
        if quantity != "value":
            partner = _find_partner(groups, group["axes"], normalize_selector(claim.lhs, values),
                                    rhs_sel)
            if partner is None:
                rows.append({"group": name, "passed": False,
                             "reason": f"no group matches rhs {claim.rhs!r} beside {name}"})
                continue
            rhs = _series(groups[partner], claim.metric)
        row: dict[str, Any] = {"group": name}
        if partner is not None:
            row["vs"] = partner
        if claim.on == "mean":
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
                row["reason"] = f"metric {claim.metric!r} missing in some cells"
        else:
            per_seed: dict[str, Any] = {}
            passed = 0
            for seed, lv in sorted(lhs.items()):
                v = lv if quantity == "value" else _quantity(quantity, lv, rhs.get(seed))
                ok = _passes(v, ops)
                passed += ok
                per_seed[str(seed)] = {"value": v, "passed": ok}
            need = claim.min_seeds or len(lhs)
            row.update({"per_seed": per_seed, "seeds_passed": passed, "seeds_needed": need,
                        "passed": passed >= need})
        rows.append(row)
    passed = bool(rows) and all(r["passed"] for r in rows)
    result: dict[str, Any] = {"text": claim.describe(), "metric": claim.metric,
                              "quantity": quantity, "on": claim.on,
                              "bounds": {op: thr for op, thr in ops},
                              "passed": passed, "groups": rows}
    if not rows:
        result["reason"] = "no group matched this claim"
    return result


def evaluate_claims(spec_claims: list[Claim], cells: list[dict[str, Any]],
                    values: dict[str, set[str]]) -> list[dict[str, Any]]:
    return [evaluate_claim(c, cells, values) for c in spec_claims]


def format_claim_row(row: dict[str, Any], quantity: str) -> str:
    if "reason" in row and "value" not in row and "per_seed" not in row:
        return f"{row['group']}: {row['reason']}"
    if "per_seed" in row:
        vals = ", ".join(f"{_num(v['value'])}{'' if v['passed'] else '✗'}"
                         for v in row["per_seed"].values())
        return (f"{row['group']}{' vs ' + row['vs'] if 'vs' in row else ''}: {quantity} per seed "
                f"[{vals}] — {row['seeds_passed']}/{len(row['per_seed'])} pass, "
                f"need {row['seeds_needed']}")
    if quantity == "value":
        return f"{row['group']}: mean {_num(row['value'])}"
    return (f"{row['group']} vs {row['vs']}: {_num(row['lhs_mean'])} vs {_num(row['rhs_mean'])}"
            f" -> {quantity} {_num(row['value'])}")


def _num(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4g}"


__all__ = ["BOUND_OPS", "evaluate_claims", "check_claim_selectors", "format_claim_row"]
