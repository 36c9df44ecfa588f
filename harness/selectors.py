"""Selectors: which cells (or groups) a mapping of axis -> value picks.

A cell's axes are ``dataset``, ``model``, ``method``, ``point`` (the sweep point's name)
and one axis per swept param (its short key). A selector ``{dataset: wine, lr: 0.01}``
matches a cell whose axes have those values. A value matches exactly, lists included
(``{hidden: [16]}`` matches the swept value ``[16]``); "any of" is explicit:
``{lr: {in: [0.1, 0.01]}}``. Values compare by their canonical text, so ``0.1`` matches
a swept ``1.0e-1``.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

AXES = ("dataset", "model", "method", "point")
ANY_OF = "in"


def fmt(value: Any) -> str:
    """The canonical text of an axis value (also used in sweep point names)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def point_value_text(value: Any) -> str:
    """A sweep value as it appears in a point's name: the canonical text (``0.1``), or the
    exact float where that text would name two different values (``0.1000001``)."""
    text = fmt(value)
    if isinstance(value, float) and text not in ("nan", "inf", "-inf") and float(text) != value:
        return repr(value)
    return text


def is_any_of(want: Any) -> bool:
    """True for the explicit "any of" form ``{in: [...]}``."""
    return isinstance(want, dict) and set(want) == {ANY_OF}


def options(want: Any) -> list[Any]:
    """The values a selector entry accepts: the list of ``{in: [...]}``, else the value."""
    if is_any_of(want):
        inner = want[ANY_OF]
        return list(inner) if isinstance(inner, (list, tuple)) else [inner]
    return [want]


def matches(axes: dict[str, Any], selector: dict[str, Any]) -> bool:
    for key, want in selector.items():
        have = fmt(axes.get(key))
        if not any(have == fmt(o) for o in options(want)):
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


def _known(value: Any, names: set[str]) -> bool:
    if isinstance(value, (dict, list)):
        return fmt(value) in names
    return str(value) in names or fmt(value) in names or any(_same(value, v) for v in names)


Problem = tuple[str, str, str | None]


def _value_problems(axis: str, want: Any, names: set[str]) -> list[Problem]:
    if isinstance(want, dict) and ANY_OF in want and not is_any_of(want):
        extra = sorted(str(k) for k in want if k != ANY_OF)
        return [(f".{axis}", f"unknown selector operator(s) {extra} beside {ANY_OF!r}",
                 f"write {{{ANY_OF}: [...]}} alone")]
    if is_any_of(want) and not isinstance(want[ANY_OF], (list, tuple)):
        return [(f".{axis}.{ANY_OF}", f"{ANY_OF!r} takes a list of values",
                 f"e.g. {{{ANY_OF}: [a, b]}}")]
    problems: list[Problem] = []
    for w in options(want):
        if _known(w, names):
            continue
        if not is_any_of(want) and isinstance(w, list) and all(_known(x, names) for x in w):
            problems.append((f".{axis}", f"no {axis} is the list {fmt(w)} (a list matches "
                             "a list-valued axis exactly)",
                             f"to match any of these values write {{{ANY_OF}: {fmt(w)}}}"))
            continue
        close = difflib.get_close_matches(fmt(w), sorted(names), n=1)
        problems.append((f".{axis}", f"no {axis} named {fmt(w)!r}",
                         f"did you mean {close[0]!r}?" if close else
                         f"{axis} names: " + ", ".join(sorted(names))))
    return problems


def selector_problems(sel: Any, values: dict[str, set[str]]) -> list[Problem]:
    """What is wrong with a selector: ``(path suffix, message, hint)`` per problem."""
    try:
        sel = normalize_selector(sel, values)
    except ValueError as exc:
        pool = sorted(set().union(*values.values())) if values else []
        close = difflib.get_close_matches(str(sel), pool, n=1)
        return [("", str(exc), f"did you mean {close[0]!r}?" if close else None)]
    problems: list[Problem] = []
    for axis, want in sel.items():
        if axis not in values:
            close = difflib.get_close_matches(str(axis), list(values), n=1)
            problems.append((f".{axis}", f"unknown axis {axis!r} in selector",
                             f"did you mean {close[0]!r}?" if close else
                             "axes: " + ", ".join(values)))
            continue
        problems += _value_problems(axis, want, values[axis])
    return problems
