"""``harness describe ADAPTER``: what an adapter is, takes and produces.

Its kind, version, package and plugin, the first paragraph of its docstring, every param
with its type, default and description (a param that takes a component names its kind
and the installed adapters of that kind), and for a metric the output names it produces.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

if TYPE_CHECKING:
    from .registry import Registry


def _type_name(annotation: Any) -> str:
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    text = re.sub(r"\b(typing|harness\.adapter|pydantic\.\w+)\.", "", text)
    return text.replace("NoneType", "None")


def _default(field: Any) -> Any:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        try:
            value = field.default_factory()
        except Exception:  # a factory that needs context: say so, do not fail
            return "(computed)"
    else:
        return None
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True) or value.model_dump(mode="json")
    if isinstance(value, list):
        return [v.model_dump(mode="json", exclude_unset=True) if isinstance(v, BaseModel) else v
                for v in value]
    return value


def _kind(field: Any) -> str | None:
    extra = field.json_schema_extra
    return extra.get("harness_kind") if isinstance(extra, dict) else None


def metric_outputs(cls: Any) -> dict[str, Any]:
    """The metric names a metric adapter produces with its default params: declared
    (``outputs`` or an ``output_names`` override) or, undeclared, named after it."""
    from .adapter import Metric
    try:
        params = cls.Params()
    except Exception:  # required params: ask with none
        params = None
    try:
        names, dynamic = cls.output_names(params)
    except Exception:
        names, dynamic = list(getattr(cls, "outputs", None) or []), True
    base = getattr(Metric.output_names, "__func__", None)
    overridden = getattr(cls.output_names, "__func__", None) is not base
    declared = getattr(cls, "outputs", None) is not None or overridden
    note = ("declared by the adapter" if declared
            else "not declared: one number named after the adapter")
    if overridden:
        note += "; the names follow its params (shown: the defaults)"
    if dynamic:
        note += "; other names may appear (they depend on the data or the method)"
    return {"outputs": sorted(names), "declared": declared, "dynamic": dynamic, "note": note}


def describe(name: str, registry: Registry) -> dict[str, Any]:
    """The adapter ``name`` as data (``--json`` prints it)."""
    cls = registry.get(name)
    info = registry.adapters[name]
    doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    params = []
    for pname, field in cls.Params.model_fields.items():
        kind = _kind(field)
        required = field.is_required()
        row: dict[str, Any] = {"name": pname, "type": _type_name(field.annotation),
                               "required": required,
                               "default": None if required else _default(field),
                               "description": field.description or ""}
        if kind:
            row["component_kind"] = kind
            row["choices"] = registry.names(kind)
        params.append(row)
    out: dict[str, Any] = {"name": name, "kind": info.kind, "version": cls.version,
                           "package": info.package, "package_version": info.package_version,
                           "plugin": info.plugin, "module": cls.__module__,
                           "description": doc, "params": params}
    if info.kind == "metric":
        out["produces"] = metric_outputs(cls)
    return out


def print_description(data: dict[str, Any], console: Any) -> None:
    import json

    from rich.table import Table
    console.print(f"{data['name']}  ({data['kind']} adapter, version {data['version']})")
    console.print(f"from {data['package']} {data['package_version']}, plugin "
                  f"{data['plugin']!r}, module {data['module']}")
    if data["description"]:
        console.print(data["description"])
    if data["params"]:
        table = Table(title="params", title_justify="left")
        for col in ("name", "type", "default", "description"):
            table.add_column(col, overflow="fold")
        for p in data["params"]:
            text = p["description"]
            if "component_kind" in p:
                choices = ", ".join(p["choices"]) or "none installed"
                text += f"{' ' if text else ''}[component of kind {p['component_kind']}: {choices}]"
            default = "required" if p["required"] else json.dumps(p["default"], default=str)
            table.add_row(p["name"], p["type"], default, text)
        console.print(table)
    else:
        console.print("params: none")
    kinds = sorted({p["component_kind"] for p in data["params"] if "component_kind" in p})
    if kinds:
        console.print("nested component kinds: " + ", ".join(kinds))
    produces = data.get("produces")
    if produces is not None:
        names = ", ".join(produces["outputs"]) or "-"
        console.print(f"produces metrics: {names} — {produces['note']}")
