"""JSON Schema of a spec, with every installed adapter's params, for YAML editors."""

from __future__ import annotations

import json
from typing import Any

from .registry import Registry
from .specmodel import SpecModel

KINDS = {"datasets": "dataset", "models": "model", "methods": "method"}


def _ref(key: str) -> str:
    """A JSON pointer to ``$defs/key`` (``/`` in adapter names escaped as ``~1``)."""
    return "#/$defs/" + key.replace("~", "~0").replace("/", "~1")


def _rewrite_refs(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                name = value[len("#/$defs/"):]
                out[key] = _ref(mapping.get(name, name))
            else:
                out[key] = _rewrite_refs(value, mapping)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, mapping) for v in node]
    return node


def spec_schema(registry: Registry) -> dict[str, Any]:
    schema = SpecModel.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    by_kind: dict[str, list[dict[str, str]]] = {}
    for name in registry.names():
        cls = registry.get(name)
        sub = cls.Params.model_json_schema()
        sub_defs = sub.pop("$defs", {})
        mapping = {d: (d if d == "Component" else f"{name}:{d}") for d in sub_defs}
        for d, body in sub_defs.items():
            if d != "Component":
                defs[mapping[d]] = _rewrite_refs(body, mapping)
        sub = _rewrite_refs(sub, mapping)
        sub.setdefault("properties", {})
        sub["properties"] = {"use": {"const": name, "description": "adapter name"},
                             **sub["properties"]}
        sub["required"] = ["use", *sub.get("required", [])]
        sub["additionalProperties"] = False
        sub["title"] = name
        sub["description"] = f"{cls.kind}: {cls.description()}"
        defs[f"adapter:{name}"] = sub
        by_kind.setdefault(cls.kind, []).append({"$ref": _ref(f"adapter:{name}")})
    any_adapter = [ref for refs in by_kind.values() for ref in refs]
    defs["Component"] = {"anyOf": [{"type": "string", "description":
                                    "a top-level component's name or an adapter name"},
                                   *any_adapter]}
    for kind, refs in by_kind.items():
        defs[f"{kind}Component"] = {"anyOf": [{"type": "string"}, *refs]}
    props = schema["properties"]
    for section, kind in KINDS.items():
        props[section]["additionalProperties"] = {"$ref": f"#/$defs/{kind}Component"}
    props["metrics"]["items"] = {"$ref": "#/$defs/metricComponent"}
    for kind in ("dataset", "model", "method", "metric"):
        defs.setdefault(f"{kind}Component", {"type": "string"})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "harness spec"
    return schema


def schema_json(registry: Registry) -> str:
    return json.dumps(spec_schema(registry), indent=2)
