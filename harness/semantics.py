"""Checks on what a valid-looking spec means: selectors that select, claims that can pass.

Run by the spec loader after every component is resolved; each problem is a located
:class:`~harness.errors.SpecError` with a suggestion:

- selectors in ``cells.only/exclude`` and a metric's ``where:`` name real axes and values;
- a claim's or report row's ``metric`` (and ``vs_metric``) is an output that the metrics
  of the cells it selects declare (:meth:`harness.Metric.output_names`);
- two metrics of one cell do not produce the same name (one would overwrite the other);
- ``lhs`` and ``rhs`` select different groups; ``min_seeds`` is at most the number of
  seeds (of the spec, and of every control whose ``must_fail`` names the claim).
"""

from __future__ import annotations

import difflib
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from .adapter import Metric
from .errors import SpecError
from .selectors import fmt, matches, normalize_selector, options, selector_problems
from .yamlfile import KeyPath

if TYPE_CHECKING:
    from .cells import Cell
    from .spec import Spec
    from .specmodel import Measure


class CoverageError(SpecError):
    """A claim, report row, metric ``where:`` or control that the spec's cells do not cover.
    An error for a spec as written; a warning when the command line changed the spec
    (``--set``), since a reduced run may leave some claims unmeasured on purpose."""


def _error(spec: Spec, path: KeyPath, message: str, hint: str | None = None,
           coverage: bool = False) -> SpecError:
    from .yamlfile import format_path
    cls = CoverageError if coverage else SpecError
    return cls(message, location=spec.doc.where(path), path=format_path(path), hint=hint)


def check_cell_selectors(spec: Spec, base: KeyPath = (), cells: Any = None) -> list[SpecError]:
    """``cells.only`` / ``cells.exclude`` entries (at ``base + ("cells", ...)``) and every
    metric's ``where:`` name real axes and values of ``spec``."""
    values = spec.axis_values()
    flt = cells if cells is not None else spec.model.cells
    errors: list[SpecError] = []
    for key in ("only", "exclude"):
        for i, sel in enumerate(getattr(flt, key) or []):
            path = (*base, "cells", key, i)
            for suffix, message, hint in selector_problems(sel, values):
                errors.append(_error(spec, path + _suffix(suffix), message, hint))
    if base:
        return errors
    wheres = spec.points[0].metric_where if spec.points else []
    for i, where in enumerate(wheres):
        for suffix, message, hint in selector_problems(where or {}, values):
            errors.append(_error(spec, ("metrics", i, "where", *_suffix(suffix)), message, hint))
    return errors


def _suffix(text: str) -> KeyPath:
    return tuple(p for p in text.split(".") if p)


# -- metric outputs ----------------------------------------------------------------------
class Outputs:
    """The metric names one cell's metrics declare: names, patterns, and whether others
    may appear (a metric with dynamic outputs)."""

    def __init__(self, cell: Cell) -> None:
        self.by_metric: list[list[str]] = []
        self.dynamic = False
        self.undeclared: dict[str, str] = {}  # adapter -> the name it is taken to produce
        for metric in cell.metrics:
            adapter = metric.adapter
            if not issubclass(adapter, Metric):  # a plugin's metric not built on harness.Metric
                self.by_metric.append([])
                self.dynamic = True
                continue
            names, dynamic = adapter.output_names(metric.params, cell.method_component)
            if adapter.outputs is None and getattr(adapter.output_names, "__func__", None) is \
                    getattr(Metric.output_names, "__func__", None):
                self.undeclared[adapter.name] = names[0] if names else ""
            self.by_metric.append(list(names))
            self.dynamic = self.dynamic or dynamic

    @property
    def names(self) -> list[str]:
        return [n for names in self.by_metric for n in names]

    def has(self, metric: str) -> bool:
        return self.dynamic or any(fnmatchcase(metric, n) for n in self.names)


def _is_pattern(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def check_duplicate_outputs(spec: Spec, cells: list[Cell]) -> list[SpecError]:
    """Two metrics of one cell that declare the same output name."""
    errors: list[SpecError] = []
    seen: set[tuple[int, int, str]] = set()
    for cell in cells:
        metrics = cell.metrics
        index = {id(m): i for i, m in enumerate(cell.point.metrics)}
        first: dict[str, int] = {}
        for j, names in enumerate(Outputs(cell).by_metric):
            pos = index.get(id(metrics[j]), j)
            for name in names:
                if _is_pattern(name):
                    continue
                if name in first and first[name] != pos and (first[name], pos, name) not in seen:
                    seen.add((first[name], pos, name))
                    errors.append(_error(
                        spec, ("metrics", pos),
                        f"metrics[{first[name]}] and metrics[{pos}] both produce {name!r} "
                        f"(in cell {cell.group}): one would overwrite the other",
                        "give one of them another output name (its `name:` or `prefix:` "
                        "param), or drop the duplicate"))
                first.setdefault(name, pos)
    return errors


def _selected(cells: list[Cell], sel: dict[str, Any]) -> list[Cell]:
    return [c for c in cells if matches(c.axes, sel)]


def check_measure_metrics(spec: Spec, cells: list[Cell]) -> list[SpecError]:
    """Each claim's and report row's metric is declared by the cells it selects."""
    values = spec.axis_values()
    outputs = {id(c): Outputs(c) for c in cells}
    every = sorted({n for o in outputs.values() for n in o.names})
    errors: list[SpecError] = []
    entries: list[tuple[str, int, Measure]] = [
        *(("expect", i, c) for i, c in enumerate(spec.model.expect)),
        *(("report", i, r) for i, r in enumerate(spec.model.report))]
    for section, i, entry in entries:
        try:
            where = normalize_selector(entry.where, values)
            lhs = {**where, **normalize_selector(entry.lhs, values)}
            rhs = normalize_selector(entry.rhs, values)
        except ValueError:
            continue  # reported by the selector checks
        chosen = _selected(cells, lhs)
        if not chosen and spec.control is None:
            key = "lhs" if entry.lhs is not None else "where"
            errors.append(_error(spec, (section, i, key), f"this {_WHAT[section]} selects no "
                                 "cell of the spec (after `cells:`): it can never be measured",
                                 "check `where`/`lhs` against `cells.only`/`exclude`",
                                 coverage=True))
        picked = chosen + (_selected(cells, rhs) if entry.rhs is not None else [])
        if entry.vs_metric is not None and entry.vs_metric == entry.metric:
            errors.append(_error(spec, (section, i, "vs_metric"), "vs_metric is the same "
                                 "metric: the ratio is always 1 and the difference 0",
                                 "compare with another metric, or two groups (lhs/rhs)"))
        for key in ("metric", "vs_metric"):
            name = getattr(entry, key)
            if name is None or (not picked and spec.control is not None):
                continue  # a control need not run every claim's cells
            scope = picked or cells
            if any(outputs[id(c)].has(name) for c in scope):
                continue
            pool = sorted({n for c in scope for n in outputs[id(c)].names}) or every
            close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
            where_text = "the cells it selects" if picked else "any cell"
            hint = f"did you mean {close[0]!r}?" if close else (
                "their metrics produce: " + (", ".join(pool[:20]) or "nothing")
                + (" ..." if len(pool) > 20 else ""))
            undeclared = {a: n for c in scope for a, n in outputs[id(c)].undeclared.items()}
            if undeclared:
                hint += "; " + ", ".join(f"{a!r} declares no outputs (taken to be {n!r})"
                                         for a, n in sorted(undeclared.items()))
                hint += ": its author can declare them (`outputs = (...)`, docs/" \
                        "writing-an-adapter.md)"
            errors.append(_error(spec, (section, i, key),
                                 f"no metric of {where_text} produces {name!r}", hint,
                                 coverage=True))
        if entry.lhs is not None and entry.rhs is not None:
            errors += _same_sides(spec, section, i, lhs, rhs)
    return errors


_WHAT = {"expect": "claim", "report": "report row"}


def _same_sides(spec: Spec, section: str, i: int, lhs: dict[str, Any],
                rhs: dict[str, Any]) -> list[SpecError]:
    """rhs sets nothing that lhs (with where) does not already fix to the same values:
    every group would be compared with itself."""
    def same(key: str) -> bool:
        return key in lhs and sorted(map(fmt, options(lhs[key]))) == sorted(
            map(fmt, options(rhs[key])))
    if rhs and all(same(k) for k in rhs):
        return [_error(spec, (section, i, "rhs"),
                       "lhs and rhs select the same groups: each group would be compared "
                       "with itself (a ratio of 1, a difference of 0)",
                       "make rhs name the other side, e.g. another method or sweep value")]
    return []


def check_min_seeds(spec: Spec) -> list[SpecError]:
    """``min_seeds`` above the number of seeds can never pass: an error where the seeds
    are the spec's own (a `--seeds` override for a quick run is left alone), and for a
    control that must make the claim fail (it would fail for want of seeds)."""
    errors: list[SpecError] = []
    from_cli = spec.doc.where(("seeds",)).source == "--seeds"
    ids = spec.claim_ids
    for i, claim in enumerate(spec.model.expect):
        if claim.min_seeds is None:
            continue
        if not from_cli and claim.min_seeds > len(spec.seeds):
            errors.append(_error(
                spec, ("expect", i, "min_seeds"),
                f"min_seeds {claim.min_seeds} is more than the spec's {len(spec.seeds)} "
                "seed(s): this claim can never pass",
                f"lower min_seeds or add seeds (seeds: {spec.seeds})"))
        for j, ctl in enumerate(spec.model.controls):
            if ctl.seeds is None or ids[i] not in ctl.must_fail:
                continue
            if claim.min_seeds > len(ctl.seeds):
                errors.append(_error(
                    spec, ("controls", j, "seeds"),
                    f"control {ctl.name!r} runs {len(ctl.seeds)} seed(s) but claim "
                    f"{ids[i]!r} needs {claim.min_seeds} passing seeds: it would fail for "
                    "want of seeds, not because of the control",
                    f"give the control at least {claim.min_seeds} seeds"))
    return errors


def check_spec(spec: Spec) -> list[SpecError]:
    """Every check above for a resolved spec (a control variant: its own cells only)."""
    from .cells import expand
    errors = check_cell_selectors(spec) if spec.control is None else []
    if spec.control is None:
        for j, ctl in enumerate(spec.model.controls):
            if ctl.cells is not None:
                variant = spec.controls.get(ctl.name, spec)
                errors += check_cell_selectors(variant, ("controls", j), ctl.cells)
        errors += check_min_seeds(spec)
    if errors:
        return errors
    try:
        cells = expand(spec)
    except SpecError:
        return []  # `validate` and `run` report a spec that expands to no cells
    one_seed = [c for c in cells if c.spec_seed == cells[0].spec_seed]
    errors = check_duplicate_outputs(spec, one_seed) + check_measure_metrics(spec, one_seed)
    wheres = spec.points[0].metric_where if spec.points and spec.control is None else []
    for i, where in enumerate(wheres):
        if where and not _selected(one_seed, where):
            errors.append(_error(spec, ("metrics", i, "where"), "this metric's `where:` "
                                 "selects no cell of the spec: it is never computed",
                                 "check it against `cells.only`/`exclude`", coverage=True))
    return errors + (check_control_cells(spec) if spec.control is None else [])


def check_control_cells(spec: Spec) -> list[SpecError]:
    """A control's cells include a group of every claim its ``must_fail`` names (else the
    claim fails for want of cells, not because of the control)."""
    from .cells import expand
    errors: list[SpecError] = []
    values = spec.axis_values()
    claims = dict(zip(spec.claim_ids, spec.model.expect, strict=True))
    for j, ctl in enumerate(spec.model.controls):
        variant = spec.controls.get(ctl.name)
        if variant is None:
            continue
        try:
            cells = expand(variant)
        except SpecError:
            continue  # `validate` reports a control restricted to no cells
        for k, cid in enumerate(ctl.must_fail):
            claim = claims.get(cid)
            if claim is None:
                continue
            try:
                sel = {**normalize_selector(claim.where, values),
                       **normalize_selector(claim.lhs, values)}
            except ValueError:
                continue
            if not _selected(cells, sel):
                errors.append(_error(
                    spec, ("controls", j, "must_fail", k),
                    f"control {ctl.name!r} runs no cell that claim {cid!r} selects: the "
                    "claim would fail for want of cells, not because of the control",
                    "widen the control's `cells:` or drop the claim from its must_fail",
                    coverage=True))
    return errors
