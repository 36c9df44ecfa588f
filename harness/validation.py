"""Turn pydantic validation errors and unknown adapter names into located spec errors.

Every message names the file and line (through :class:`~harness.yamlfile.Located`),
the key path, what was expected, and the nearest valid key or adapter name.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import SpecError
from .yamlfile import KeyPath, Located, format_path


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def model_at(root: type[BaseModel], loc: KeyPath) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` below ``root``."""
    current: type[BaseModel] | None = root
    for part in loc:
        if current is None:
            return None
        if isinstance(part, str) and part in current.model_fields:
            models = _models_in(current.model_fields[part].annotation)
            current = models[0] if models else None
    return current


def _real_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """Drop pydantic's union/function tags: keep the parts that index into ``data``."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif not isinstance(cur, (dict, list)):
            break
        elif isinstance(cur, dict) and isinstance(part, str) and not part.endswith("]"):
            out.append(part)  # a missing key: keep it so the message names it
            break
    return tuple(out)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def errors_from_pydantic(exc: ValidationError, model: type[BaseModel], data: Any,
                         prefix: KeyPath, doc: Located, what: str = "") -> list[SpecError]:
    """One located :class:`SpecError` per pydantic error."""
    out: list[SpecError] = []
    seen: set[tuple[KeyPath, str]] = set()
    for err in exc.errors(include_url=False):
        raw_loc = tuple(err["loc"])
        kind = err["type"]
        hint = None
        if kind == "extra_forbidden":
            rel = _real_path(data, raw_loc)
            key = str(rel[-1]) if rel else str(raw_loc[-1])
            owner = model_at(model, rel[:-1])
            allowed = sorted(owner.model_fields) if owner is not None else []
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            message = f"unknown key {key!r}" + (f" for {what}" if what else "")
            if close:
                hint = f"did you mean {close[0]!r}?"
            elif allowed:
                hint = "valid keys: " + ", ".join(allowed)
        elif kind == "missing":
            rel = _real_path(data, raw_loc[:-1]) + (raw_loc[-1],)
            message = f"missing required key {raw_loc[-1]!r}" + (f" for {what}" if what else "")
        else:
            rel = _real_path(data, raw_loc)
            given = err.get("input")
            text = str(err["msg"]).removeprefix("Value error, ")
            message = text if kind == "value_error" else f"{text}; got {_describe(given)}"
            if what:
                message += f" (in {what})"
        full = prefix + rel
        if (full, message) in seen:
            continue
        seen.add((full, message))
        out.append(SpecError(message, location=doc.where(full), path=format_path(full), hint=hint))
    return out


def validate_model(model: type[BaseModel], data: Any, prefix: KeyPath, doc: Located,
                   errors: list[SpecError], what: str = "") -> BaseModel | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors.extend(errors_from_pydantic(exc, model, data, prefix, doc, what))
        return None

