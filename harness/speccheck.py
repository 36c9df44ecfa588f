"""Checks on a spec's values that types alone do not catch: duplicate seeds, non-finite
numbers where no adapter asked for them, and ``--set`` values parsed with the same bounds
as spec files.

A float param whose field allows them (``Field(allow_inf_nan=True)``) may be ``.inf`` or
``.nan``; every other place a number goes (float fields are checked by pydantic since
:class:`harness.Params` sets ``allow_inf_nan=False``, and this module walks the values of
untyped fields, lists and mappings) must be finite.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from .adapter import Component
from .errors import Location, SpecError
from .yamlfile import KeyPath, Located, format_path
from .yamlsafe import parse_yaml_text


def _allows_non_finite(params: BaseModel, name: str) -> bool:
    info = type(params).model_fields[name]
    return any(getattr(m, "allow_inf_nan", False) for m in info.metadata)


def non_finite_values(params: BaseModel, path: KeyPath) -> Iterator[tuple[KeyPath, float]]:
    """Every non-finite float inside ``params`` (nested components excluded: they are
    checked when they are resolved) that its field does not allow."""
    for name in type(params).model_fields:
        if not _allows_non_finite(params, name):
            yield from _walk(getattr(params, name), path + (name,))


def _walk(value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, float]]:
    if isinstance(value, float):
        if not math.isfinite(value):
            yield path, value
    elif isinstance(value, Component):
        return
    elif isinstance(value, BaseModel):
        yield from non_finite_values(value, path)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, path + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, path + (str(key),))


def non_finite_errors(params: BaseModel, path: KeyPath, doc: Located,
                      what: str) -> list[SpecError]:
    return [SpecError(f"{value} is not a finite number (in {what})", location=doc.where(p),
                      path=format_path(p), hint="give a finite number")
            for p, value in non_finite_values(params, path)]


def _number_type(annotation: Any) -> bool:
    """``int``, ``float`` or an optional of one of them."""
    if annotation in (int, float):
        return True
    args = typing.get_args(annotation)
    return bool(args) and all(a in (int, float, type(None)) for a in args) and any(
        a in (int, float) for a in args)


def bool_as_number_errors(model: type[BaseModel], raw: dict[str, Any], path: KeyPath,
                          doc: Located, what: str) -> list[SpecError]:
    """``true``/``false`` given to a number param (pydantic would read them as 1 and 0)."""
    errors: list[SpecError] = []
    for key, value in raw.items():
        info = model.model_fields.get(key)
        if info is not None and isinstance(value, bool) and _number_type(info.annotation):
            errors.append(SpecError(
                f"{value!r} is a boolean, not a number (in {what})",
                location=doc.where(path + (key,)), path=format_path(path + (key,)),
                hint="write a number"))
    return errors


def duplicate_seeds(seeds: list[int] | None, path: KeyPath, doc: Located) -> list[SpecError]:
    errors: list[SpecError] = []
    seen: dict[int, int] = {}
    for i, seed in enumerate(seeds or []):
        if seed in seen:
            errors.append(SpecError(
                f"seed {seed} is given twice (also at position {seen[seed]})",
                location=doc.where(path + (i,)), path=format_path(path + (i,)),
                hint="each seed once: a repeated seed would be counted twice in aggregates"))
        seen.setdefault(seed, i)
    return errors


def parse_override_value(raw: str, where: str) -> Any:
    """A ``--set`` value as YAML, with the limits and tag rules of spec files."""
    if not raw.strip():
        return ""
    try:
        data, _ = parse_yaml_text(raw, where)
    except SpecError as exc:
        raise SpecError(f"cannot parse value {raw[:80]!r}: {exc.message}",
                        location=Location(where), hint=exc.hint) from None
    return data
