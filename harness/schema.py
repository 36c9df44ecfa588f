"""JSON Schema of a spec, with every installed adapter's params, for YAML editors."""

from __future__ import annotations

import copy
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
    metric_entries = _metric_entries(defs, by_kind.get("metric", []))
    props["metrics"]["items"] = {"anyOf": [{"type": "string"}, *metric_entries]}
    for kind in ("dataset", "model", "method", "metric"):
        defs.setdefault(f"{kind}Component", {"type": "string"})
    return _top_level(schema)


SELECTOR = {"type": "object", "description": "axis -> value (a list value matches a list "
            "exactly; `{in: [...]}` matches any of several values)"}


def _metric_entries(defs: dict[str, Any], refs: list[dict[str, str]]) -> list[dict[str, str]]:
    """A metric in the spec's `metrics:` list also takes `where:` (the cells it applies to)."""
    out = []
    for ref in refs:
        key = ref["$ref"][len("#/$defs/"):].replace("~1", "/").replace("~0", "~")
        body = copy.deepcopy(defs[key])
        body["properties"] = {**body.get("properties", {}), "where": {
            **SELECTOR, "description": "the cells this metric applies to"}}
        defs["entry:" + key] = body
        out.append({"$ref": _ref("entry:" + key)})
    return out


def _top_level(schema: dict[str, Any]) -> dict[str, Any]:
    """A full spec, or one that `extends:` others: then every key is optional, `KEY: null`
    removes an inherited entry, and a component may be a partial override of the base's."""
    defs = schema.pop("$defs")
    extends = {"description": "spec file(s) to deep-merge under this one (relative paths)",
               "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    full = dict(schema)
    full["properties"] = {"extends": extends, **schema["properties"]}
    full["patternProperties"] = {"^x-": {"description": "ignored: holds YAML anchors"}}
    full["additionalProperties"] = False
    defs["Spec"] = full
    partial = copy.deepcopy(full)
    partial.pop("required", None)
    for key, prop in partial["properties"].items():
        if key in KINDS:
            prop["additionalProperties"] = {"anyOf": [
                prop["additionalProperties"], {"type": "null"},
                {"type": "object", "not": {"required": ["use"]},
                 "description": "a partial override of the base spec's component"}]}
        if key != "extends":
            partial["properties"][key] = {"anyOf": [prop, {"type": "null"}]}
    partial["required"] = ["extends"]
    defs["ExtendingSpec"] = partial
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "harness spec",
            "description": full.get("description", "a harness spec"), "$defs": defs,
            "if": {"type": "object", "required": ["extends"]},
            "then": {"$ref": "#/$defs/ExtendingSpec"}, "else": {"$ref": "#/$defs/Spec"}}


def schema_json(registry: Registry) -> str:
    return json.dumps(spec_schema(registry), indent=2)
