"""Load a spec: YAML with locations -> overrides -> pydantic -> adapters resolved -> sweep.

``load_spec`` returns a :class:`Spec` whose every component is resolved to its adapter
class and validated params, once per sweep point. All errors found in one pass are
reported together, each with file, line, key path and a suggestion.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .adapter import KIND_SECTIONS, SECTION_KINDS, Component
from .errors import HarnessError, Location, SpecError, SpecErrors, SpecWarning
from .registry import Registry
from .selectors import fmt, point_value_text, selector_problems
from .speccheck import (
    bool_as_number_errors,
    duplicate_seeds,
    non_finite_errors,
    parse_override_value,
)
from .specmodel import Control, Measure, SpecModel
from .validation import validate_model
from .yamlfile import KeyPath, Located, format_path, load_with_extends


@dataclass
class SweepPoint:
    """One point of the sweep grid with its own resolved components."""

    name: str | None
    values: dict[str, Any]
    short: dict[str, Any]
    datasets: dict[str, Component]
    models: dict[str, Component]
    methods: dict[str, Component]
    metrics: list[Component]
    metric_where: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Spec:
    model: SpecModel
    source: str
    data: dict[str, Any]
    points: list[SweepPoint]
    doc: Located = field(repr=False)
    control: str | None = None  # the control's name when this spec is a control variant
    controls: dict[str, Spec] = field(default_factory=dict, repr=False)
    changed: bool = False  # the command line overrode parts of it (``--set``)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def seeds(self) -> list[int]:
        return self.model.seeds

    @property
    def claim_ids(self) -> list[str]:
        return [c.id or c.derived_id() for c in self.model.expect]

    def axis_values(self) -> dict[str, set[str]]:
        """Every name each axis takes in this spec (for checking selectors)."""
        values: dict[str, set[str]] = {"dataset": set(), "model": set(), "method": set(),
                                       "point": set()}
        for point in self.points:
            values["dataset"].update(point.datasets)
            values["model"].update(point.models)
            values["method"].update(point.methods)
            if point.name:
                values["point"].add(point.name)
            for key, value in point.short.items():
                values.setdefault(key, set()).add(fmt(value))
        return values

    def hash(self) -> str:
        blob = json.dumps(self.data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# -- overrides -------------------------------------------------------------------------
def parse_path(text: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in text.split(".")]


OPTIONAL_SECTIONS = ("settings", "cells", "sweep", "datasets", "models")


def set_path(data: Any, path: list[str | int], value: Any, where: str) -> None:
    """Set ``value`` at ``path``; every part but the last must exist (an optional
    top-level section such as ``settings`` is created when absent)."""
    cur = data
    for i, part in enumerate(path[:-1]):
        if i == 0 and isinstance(cur, dict) and part in OPTIONAL_SECTIONS and part not in cur:
            cur[part] = {}
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and part < len(cur):
            cur = cur[part]
        else:
            done = ".".join(str(p) for p in path[:i]) or "<top level>"
            keys = list(cur) if isinstance(cur, dict) else []
            close = difflib.get_close_matches(str(part), [str(k) for k in keys], n=1)
            hint = f"did you mean {close[0]!r}?" if close else (
                f"{done} has: {', '.join(map(str, keys))}" if keys else None)
            raise SpecError(f"{done} has no key {part!r}",
                            location=Location(where), path=".".join(map(str, path)), hint=hint)
    last = path[-1]
    if isinstance(cur, dict):
        cur[last] = value
    elif isinstance(cur, list) and isinstance(last, int) and last < len(cur):
        cur[last] = value
    else:
        raise SpecError(f"cannot set {last!r} inside a {type(cur).__name__}",
                        location=Location(where), path=".".join(map(str, path)))


def set_values(doc: Located, values: dict[str, Any], where: Any) -> None:
    """Apply ``{path: value}`` overrides (a control's ``set:``); ``where(path)`` locates
    each one for error messages."""
    for key, value in values.items():
        path = parse_path(str(key))
        set_path(doc.data, path, copy.deepcopy(value), str(where(key)))
        doc.locations[tuple(path)] = where(key)


def apply_overrides(doc: Located, overrides: list[str]) -> None:
    for item in overrides:
        where = f"--set {item}"
        if "=" not in item:
            raise SpecError("expected --set PATH=VALUE, e.g. --set methods.train.lr=0.01",
                            location=Location(where))
        key, raw = item.split("=", 1)
        if not key:
            raise SpecError("empty path in --set", location=Location(where))
        value = parse_override_value(raw, where)
        path = parse_path(key)
        set_path(doc.data, path, value, where)
        doc.locations[tuple(path)] = Location(where)


# -- component resolution --------------------------------------------------------------
class Resolver:
    def __init__(self, registry: Registry, doc: Located, data: dict[str, Any]) -> None:
        self.registry = registry
        self.doc = doc
        self.data = data
        self.errors: list[SpecError] = []

    def fail(self, message: str, path: KeyPath, hint: str | None = None) -> None:
        self.errors.append(SpecError(message, location=self.doc.where(path),
                                     path=format_path(path), hint=hint))

    def top_level(self, section: str, name: str, stack: tuple[str, ...] = ()) -> Component | None:
        raw = self.data.get(section, {}).get(name)
        return self.resolve(raw, (section, name), SECTION_KINDS[section], label=name,
                            stack=stack + (f"{section}.{name}",))

    def resolve(self, raw: Any, path: KeyPath, kind: str | None, label: str | None = None,
                stack: tuple[str, ...] = ()) -> Component | None:
        if isinstance(raw, Component):  # a bare name may be a reference: treat it as text
            raw = {"use": raw.use, **raw.raw_params} if raw.raw_params else raw.use
        if isinstance(raw, str):
            # a bare name refers to a top-level component of the expected kind; a field of
            # another kind (optimizer, selection, ...) never refers to one
            section = KIND_SECTIONS.get(kind or "")
            sections = ([section] if section else []) if kind else [
                "datasets", "models", "methods"]
            for sec in sections:
                table = self.data.get(sec) if sec in ("datasets", "models", "methods") else None
                if isinstance(table, dict) and raw in table:
                    ref = f"{sec}.{raw}"
                    if ref in stack:
                        self.fail(f"component reference cycle: {' -> '.join(stack + (ref,))}", path)
                        return None
                    return self.top_level(sec, raw, stack)
            raw = {"use": raw}
        if not isinstance(raw, dict):
            self.fail(f"expected a component ({{use: adapter-name, ...params}}) or a name, "
                      f"got {type(raw).__name__}", path)
            return None
        use = raw.get("use")
        if not isinstance(use, str):
            self.fail("missing `use:` (the adapter name)", path,
                      hint="`harness list` shows the adapter names")
            return None
        try:
            adapter = self.registry.get(use, kind)
        except HarnessError as exc:
            self.fail(exc.message, path + ("use",), exc.hint)
            return None
        params_raw = {k: v for k, v in raw.items() if k != "use"}
        before = len(self.errors)
        params = validate_model(adapter.Params, params_raw, path, self.doc, self.errors,
                                what=f"adapter {use!r}")
        if params is None or len(self.errors) > before:
            return None
        bad = non_finite_errors(params, path, self.doc, what=f"adapter {use!r}")
        bad += bool_as_number_errors(adapter.Params, params_raw, path, self.doc,
                                     what=f"adapter {use!r}")
        if bad:
            self.errors += bad
            return None
        self._resolve_nested(params, path, stack)
        return Component.resolved(use, adapter, params, label)  # type: ignore[arg-type]

    def _resolve_nested(self, params: BaseModel, path: KeyPath, stack: tuple[str, ...]) -> None:
        for fname, finfo in type(params).model_fields.items():
            extra = finfo.json_schema_extra if isinstance(finfo.json_schema_extra, dict) else {}
            kind_value = extra.get("harness_kind")
            kind = kind_value if isinstance(kind_value, str) else None
            value = getattr(params, fname)
            if isinstance(value, Component):
                setattr(params, fname, self.resolve(value, path + (fname,), kind, stack=stack))
            elif isinstance(value, list) and any(isinstance(v, Component) for v in value):
                setattr(params, fname, [
                    self.resolve(v, path + (fname, i), kind, stack=stack)
                    if isinstance(v, Component) else v for i, v in enumerate(value)])
            elif isinstance(value, dict) and any(isinstance(v, Component) for v in value.values()):
                setattr(params, fname, {
                    k: self.resolve(v, path + (fname, k), kind, stack=stack)
                    if isinstance(v, Component) else v for k, v in value.items()})
            elif isinstance(value, BaseModel):
                self._resolve_nested(value, path + (fname,), stack)


def _short_names(paths: list[str]) -> dict[str, str]:
    lasts = [p.split(".")[-1] for p in paths]
    pairs = zip(paths, lasts, strict=True)
    return {p: (last if lasts.count(last) == 1 else p) for p, last in pairs}


def _expand_sweep(sweep: dict[str, list[Any]]) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for key, values in sweep.items():
        points = [{**p, key: v} for p in points for v in values]
    return points


def read_document(path: str | Path, overrides: list[str] | None = None,
                  seeds: list[int] | None = None) -> Located:
    """The spec file with its ``extends:`` merged and the command line's overrides applied."""
    doc = load_with_extends(Path(path))
    apply_overrides(doc, overrides or [])
    if seeds is not None:
        doc.data["seeds"] = list(seeds)
        doc.locations[("seeds",)] = Location("--seeds")
    # top-level `x-...` keys hold YAML anchors for reuse (as in compose files): not validated
    doc.data = {k: v for k, v in doc.data.items() if not str(k).startswith("x-")}
    return doc


def load_spec(path: str | Path, registry: Registry, overrides: list[str] | None = None,
              seeds: list[int] | None = None) -> Spec:
    """Read, override, validate and resolve a spec file and its controls (raises
    :class:`SpecErrors` with every problem found)."""
    return build_spec(read_document(path, overrides, seeds), registry, str(path),
                      changed=bool(overrides))


def _unique(errors: list[SpecError]) -> list[SpecError]:
    return list({e.render(): e for e in errors}.values())  # one per place, not per point


def build_spec(doc: Located, registry: Registry, source: str, *,
               control: str | None = None, changed: bool = False) -> Spec:
    """Validate a spec document and resolve every component, once per sweep point.

    ``changed``: the command line overrode parts of the spec (``--set``); then claims and
    controls its cells no longer cover are warnings (:class:`SpecWarning`), not errors."""
    errors: list[SpecError] = []
    model = validate_model(SpecModel, doc.data, (), doc, errors)
    if model is None:
        raise SpecErrors(errors)
    assert isinstance(model, SpecModel)
    errors += duplicate_seeds(model.seeds, ("seeds",), doc)
    for i, ctl in enumerate(model.controls):
        errors += duplicate_seeds(ctl.seeds, ("controls", i, "seeds"), doc)
    for key, grid in model.sweep.items():
        where = doc.where(("sweep", key))
        if key.split(".")[0] not in ("datasets", "models", "methods") or "." not in key:
            errors.append(SpecError("a sweep path must start with datasets., models. or "
                                    "methods. and name a component's param", location=where,
                                    path=f"sweep.{key}", hint="e.g. methods.train.lr"))
        elif not grid:
            errors.append(SpecError("a sweep needs at least one value", location=where,
                                    path=f"sweep.{key}"))
    if errors:
        raise SpecErrors(errors)
    points = _resolve_points(doc, model, registry, errors)
    if errors:
        raise SpecErrors(_unique(errors))
    spec = Spec(model=model, source=source, data=doc.data, points=points, doc=doc,
                control=control, changed=changed)
    errors += _check_measures(spec)
    if control is None:
        errors += _check_controls(spec, registry)
    if not errors:
        from .semantics import CoverageError, check_spec
        found = check_spec(spec)
        if changed:
            for problem in _unique([e for e in found if isinstance(e, CoverageError)]):
                warnings.warn(SpecWarning(problem.render()), stacklevel=2)
            found = [e for e in found if not isinstance(e, CoverageError)]
        errors += found
    if errors:
        raise SpecErrors(_unique(errors))
    return spec


def _resolve_points(doc: Located, model: SpecModel, registry: Registry,
                    errors: list[SpecError]) -> list[SweepPoint]:
    short = _short_names(list(model.sweep))
    points: list[SweepPoint] = []
    names: dict[str, dict[str, Any]] = {}
    for values in _expand_sweep(model.sweep):
        data = copy.deepcopy(doc.data)
        point_doc = Located(data, dict(doc.locations), doc.source)
        for key, value in values.items():
            try:
                set_path(data, parse_path(key), value, f"sweep {key}")
            except SpecError as exc:
                errors.append(SpecError(exc.message,
                                        location=doc.where(("sweep", key)),
                                        path=f"sweep.{key}", hint=exc.hint))
                continue
            index = next((j for j, v in enumerate(model.sweep[key]) if v is value), None)
            point_doc.locations[tuple(parse_path(key))] = doc.where(  # the value's own line
                ("sweep", key) if index is None else ("sweep", key, index))
        resolver = Resolver(registry, point_doc, data)
        sections = {sec: {name: resolver.top_level(sec, name) for name in data.get(sec, {})}
                    for sec in ("datasets", "models", "methods")}
        raw_metrics = data.get("metrics", [])
        wheres = [m.pop("where", {}) if isinstance(m, dict) else {} for m in raw_metrics]
        metrics = [resolver.resolve(m, ("metrics", i), "metric")
                   for i, m in enumerate(raw_metrics)]
        errors.extend(resolver.errors)
        if resolver.errors:
            continue
        name = ",".join(f"{short[k]}={point_value_text(v)}" for k, v in values.items()) or None
        if name is not None and name in names:
            errors.append(SpecError(
                f"two sweep points get the same name {name!r}: {names[name]} and {values}",
                location=doc.where(("sweep",)), path="sweep",
                hint="make the values differ in their text (e.g. no duplicate values)"))
            continue
        if name is not None:
            names[name] = values
        points.append(SweepPoint(
            name=name, values=values, short={short[k]: v for k, v in values.items()},
            datasets=sections["datasets"], models=sections["models"],  # type: ignore[arg-type]
            methods=sections["methods"], metrics=metrics,  # type: ignore[arg-type]
            metric_where=wheres))
    return points


def _check_measures(spec: Spec) -> list[SpecError]:
    """Claims' and report rows' selectors name real axes and values; ids are unique."""
    errors: list[SpecError] = []
    values = spec.axis_values()
    entries: list[tuple[str, int, Measure]] = [
        *(("expect", i, c) for i, c in enumerate(spec.model.expect)),
        *(("report", i, r) for i, r in enumerate(spec.model.report))]
    for section, i, entry in entries:
        for key in ("where", "lhs", "rhs"):
            path = (section, i, key)
            for suffix, message, hint in selector_problems(getattr(entry, key), values):
                errors.append(SpecError(message, location=spec.doc.where(path),
                                        path=f"{section}[{i}].{key}{suffix}", hint=hint))
    seen: dict[str, int] = {}
    for i, cid in enumerate(spec.claim_ids):
        if cid in seen:
            errors.append(SpecError(
                f"duplicate claim id {cid!r} (also claim {seen[cid]})",
                location=spec.doc.where(("expect", i, "id")), path=f"expect[{i}].id",
                hint="give each claim a unique `id:`"))
        seen.setdefault(cid, i)
    errors += _check_requires(spec)
    return errors


def _check_requires(spec: Spec) -> list[SpecError]:
    """``requires:`` names other, known claims and never goes round in a circle."""
    errors: list[SpecError] = []
    ids = spec.claim_ids
    graph = {cid: list(c.requires) for cid, c in zip(ids, spec.model.expect, strict=True)}
    for i, (cid, claim) in enumerate(zip(ids, spec.model.expect, strict=True)):
        for j, req in enumerate(claim.requires):
            if req == cid or req not in ids:
                close = difflib.get_close_matches(req, [x for x in ids if x != cid], n=1)
                errors.append(SpecError(
                    f"claim {cid!r} requires itself" if req == cid else
                    f"unknown claim id {req!r}",
                    location=spec.doc.where(("expect", i, "requires", j)),
                    path=f"expect[{i}].requires[{j}]",
                    hint=f"did you mean {close[0]!r}?" if close else
                    "claim ids: " + ", ".join(ids)))
    if errors:
        return errors
    state: dict[str, int] = {}

    def cycle(node: str, trail: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*trail, node, nxt]
            if state.get(nxt) is None and (found := cycle(nxt, [*trail, node])):
                return found
        state[node] = 2
        return None

    for i, cid in enumerate(ids):
        if state.get(cid) is None and (loop := cycle(cid, [])):
            errors.append(SpecError(
                "claims require each other in a circle: " + " -> ".join(loop),
                location=spec.doc.where(("expect", i, "requires")),
                path=f"expect[{i}].requires", hint="drop one of the `requires:` entries"))
            break
    return errors


def _check_controls(spec: Spec, registry: Registry) -> list[SpecError]:
    """Each control names known claims, and its variant of the spec is itself valid."""
    errors: list[SpecError] = []
    ids = spec.claim_ids
    names: set[str] = set()
    for i, ctl in enumerate(spec.model.controls):
        if ctl.name in names:
            errors.append(SpecError(f"duplicate control name {ctl.name!r}",
                                    location=spec.doc.where(("controls", i, "name")),
                                    path=f"controls[{i}].name"))
        names.add(ctl.name)
        for j, cid in enumerate(ctl.must_fail):
            if cid not in ids:
                close = difflib.get_close_matches(cid, ids, n=1)
                errors.append(SpecError(
                    f"unknown claim id {cid!r}",
                    location=spec.doc.where(("controls", i, "must_fail", j)),
                    path=f"controls[{i}].must_fail[{j}]",
                    hint=f"did you mean {close[0]!r}?" if close else
                    "claim ids: " + ", ".join(ids)))
        try:
            spec.controls[ctl.name] = control_spec(spec, ctl, i, registry)
        except SpecErrors as exc:
            errors += exc.errors
        except SpecError as exc:
            errors.append(exc)
    return errors


def control_spec(spec: Spec, ctl: Control, index: int, registry: Registry) -> Spec:
    """The variant of ``spec`` that control ``ctl`` describes (its own cells, same claims)."""
    data = copy.deepcopy(spec.doc.data)
    data.pop("controls", None)
    doc = Located(data, dict(spec.doc.locations), spec.doc.source)
    base = ("controls", index)

    def where(key: str) -> Location:
        return spec.doc.where(base + ("set", key))

    for key, value in ctl.set.items():
        try:
            set_values(doc, {key: value}, where)
        except SpecError as exc:
            raise SpecError(exc.message, location=where(key),
                            path=f"controls[{index}].set.{key}", hint=exc.hint) from None
    if ctl.seeds is not None:
        data["seeds"] = list(ctl.seeds)
        doc.locations[("seeds",)] = spec.doc.where(base + ("seeds",))
    if ctl.cells is not None:
        cells = data.setdefault("cells", {})
        cells["only"] = ctl.cells.only if ctl.cells.only is not None else cells.get("only")
        cells["exclude"] = [*cells.get("exclude", []), *ctl.cells.exclude]
        if cells["only"] is None:
            cells.pop("only")
        for part in ((), ("only",), ("exclude",)):
            doc.locations[("cells", *part)] = spec.doc.where(base + ("cells", *part))
    return build_spec(doc, registry, spec.source, control=ctl.name, changed=spec.changed)
