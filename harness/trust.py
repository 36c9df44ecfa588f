"""Code named by a spec runs only with ``--trust-code``.

A spec is data, but an adapter may import or execute code from a path (or hub name) a
spec gives it, e.g. ``{use: evaluate/metric, path: DIR}`` runs the module in DIR. Such
adapters list those params in ``code_params``; running a spec that sets one needs an
explicit ``--trust-code`` (the ecosystem's ``trust_remote_code`` convention). Relative
paths in them resolve against the spec's folder (``RunContext.spec_dir``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from .adapter import Component
from .errors import HarnessError


def _components(value: Any) -> Iterator[Component]:
    if isinstance(value, Component):
        if value.is_resolved:
            yield value
            yield from _components(value.params)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _components(getattr(value, name, None))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _components(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _components(item)


def code_uses(cells: Iterable[Any]) -> list[tuple[str, str, str, Any]]:
    """(cell name, adapter, param, value) for every code-naming param the cells set."""
    out: list[tuple[str, str, str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for cell in cells:
        roots = [cell.dataset, cell.model, cell.method, *cell.metrics]
        for comp in _components(roots):
            for param in comp.adapter.code_params:
                value = getattr(comp.params, param, None)
                key = (comp.adapter.name, param, repr(value))
                if value in (None, "") or key in seen:
                    continue
                seen.add(key)
                out.append((cell.name, comp.adapter.name, param, value))
    return out


def require_trust(cells: Iterable[Any], trusted: bool, source: str) -> None:
    """Raise (exit 2) when the cells would run spec-named code and ``trusted`` is False."""
    if trusted:
        return
    uses = code_uses(cells)
    if not uses:
        return
    lines = "; ".join(f"{adapter} {param}={value!r} (cell {cell})"
                      for cell, adapter, param, value in uses[:3])
    more = f" and {len(uses) - 3} more" if len(uses) > 3 else ""
    raise HarnessError(f"{source}: the spec names code to run: {lines}{more}",
                       hint="read that code; if you trust it, pass --trust-code")
