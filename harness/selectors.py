"""Selectors: which cells (or groups) a mapping of axis -> value picks.

A cell's axes are ``dataset``, ``model``, ``method``, ``point`` (the sweep point's name)
and one axis per swept param (its short key). A selector ``{dataset: wine, lr: 0.01}``
matches a cell whose axes have those values; a list in a selector means "any of".
Values compare by their canonical text, so ``0.1`` matches a swept ``1.0e-1``.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

AXES = ("dataset", "model", "method", "point")


def fmt(value: Any) -> str:
    """The canonical text of an axis value (also used in sweep point names)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def matches(axes: dict[str, Any], selector: dict[str, Any]) -> bool:
    for key, want in selector.items():
        have = axes.get(key)
        options = want if isinstance(want, list) else [want]
        if not any(fmt(have) == fmt(o) for o in options):
            return False
    return True


def normalize_selector(sel: Any, values: dict[str, set[str]]) -> dict[str, Any]:
    """A selector as a dict; a bare name is looked up among the axes' names."""
    if sel is None:
        return {}
    if isinstance(sel, dict):
        return sel
    hits = [axis for axis in AXES if str(sel) in values.get(axis, set())]
    if len(hits) != 1:
        raise ValueError(f"{sel!r} names {'no' if not hits else 'more than one'} "
                         "dataset, model, method or sweep point")
    return {hits[0]: str(sel)}


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def selector_problems(sel: Any, values: dict[str, set[str]]) -> list[tuple[str, str, str | None]]:
    """What is wrong with a selector: ``(path suffix, message, hint)`` per problem."""
    try:
        sel = normalize_selector(sel, values)
    except ValueError as exc:
        pool = sorted(set().union(*values.values())) if values else []
        close = difflib.get_close_matches(str(sel), pool, n=1)
        return [("", str(exc), f"did you mean {close[0]!r}?" if close else None)]
    problems: list[tuple[str, str, str | None]] = []
    for axis, want in sel.items():
        if axis not in values:
            close = difflib.get_close_matches(str(axis), list(values), n=1)
            problems.append((f".{axis}", f"unknown axis {axis!r} in selector",
                             f"did you mean {close[0]!r}?" if close else
                             "axes: " + ", ".join(values)))
            continue
        for w in (want if isinstance(want, list) else [want]):
            if str(w) not in values[axis] and fmt(w) not in values[axis] and not any(
                    _same(w, v) for v in values[axis]):
                close = difflib.get_close_matches(str(w), sorted(values[axis]), n=1)
                problems.append((f".{axis}", f"no {axis} named {w!r}",
                                 f"did you mean {close[0]!r}?" if close else
                                 f"{axis} names: " + ", ".join(sorted(values[axis]))))
    return problems
