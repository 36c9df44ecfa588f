"""The pydantic models of a spec's top level, its claims and its cell filters."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from .adapter import Component

# names become folder and file names: ASCII, no separators, bounded (\Z: no final newline)
NAME_MAX = 64
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\Z")
NAME_RULE = ("use letters, digits and _ . + - only, starting with a letter or digit "
             f"(at most {NAME_MAX} characters)")
SEED_MAX = 2**63 - 1  # seeds are stored in SQLite's signed 64-bit integers
THREADS_MAX = 1024
JOBS_MAX = 1024
DEVICE_RE = re.compile(r"(cpu|mps|cuda(:[0-9]{1,3})?)\Z")


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(f"name {value[:80]!r}: {NAME_RULE}")
    return value


def _check_device(value: str) -> str:
    if not DEVICE_RE.match(value):
        raise ValueError(f"unknown device {value[:40]!r}: use cpu, cuda, cuda:N or mps")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
Seed = Annotated[StrictInt, Field(ge=0, le=SEED_MAX)]
Device = Annotated[str, AfterValidator(_check_device)]
AXES = ("dataset", "model", "method", "point")
BOUND_OPS = {"at_least": ">=", "at_most": "<=", "above": ">", "below": "<"}
QUANTITIES = ("value", "ratio", "diff")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Selector = dict[str, Any]


class Settings(Strict):
    """How cells run; recorded in every record and part of each cell's identity."""

    threads: StrictInt = Field(1, ge=1, le=THREADS_MAX,
                               description="torch intra-op threads per cell")
    jobs: StrictInt = Field(1, ge=1, le=JOBS_MAX, description="cells run at once (worker "
                            "processes) unless `--jobs` says otherwise; does not change results")
    device: Device = Field("cpu", description="torch device: cpu, cuda, cuda:N or mps")
    deterministic: StrictBool = Field(True, description="torch deterministic algorithms")
    common_random_numbers: StrictBool = Field(
        False, description="every method and sweep point on the same dataset and model "
        "starts from the same model initialization and random stream (paired comparisons)")
    timeout_s: float | None = Field(
        None, gt=0, allow_inf_nan=False, strict=True,
        description="wall-clock limit per cell in seconds: a cell still running then is "
        "stopped and recorded as failed (`timed out after N s`), and the sweep goes on; "
        "cells then run in worker processes. `--timeout` overrides it. Not part of a cell's "
        "identity")


class CellFilter(Strict):
    """Restrict the product of datasets x models x methods x sweep points."""

    only: list[Selector] | None = Field(None, description="keep cells matching any selector")
    exclude: list[Selector] = Field(default_factory=list,
                                    description="drop cells matching any selector")


ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\Z")


class Measure(Strict):
    """What a claim or a report row measures: one metric of the groups ``where`` selects,
    the ratio or difference of two groups (``lhs`` vs ``rhs``), or of two metrics of the
    same group (``metric`` vs ``vs_metric``); on the mean over seeds or on each seed."""

    id: str | None = Field(None, description="short name, unique in the spec (derived if absent)")
    metric: str
    vs_metric: str | None = Field(None, description="compare `metric` with this metric of "
                                  "the same group (ratio_* or diff_* bounds)")
    text: str | None = None
    where: Selector = Field(default_factory=dict)
    lhs: str | Selector | None = None
    rhs: str | Selector | None = None
    on: Literal["mean", "each_seed"] = "mean"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not ID_RE.match(v):
            raise ValueError("an id uses letters, digits and _ . + - only (at most 64)")
        return v

    def _check_pairing(self, quantity: str) -> None:
        paired = self.lhs is not None or self.rhs is not None
        if paired and (self.lhs is None or self.rhs is None):
            raise ValueError("a comparison needs both lhs and rhs")
        if paired and self.vs_metric is not None:
            raise ValueError("compare two groups (lhs/rhs) or two metrics (vs_metric), "
                             "not both")
        compared = paired or self.vs_metric is not None
        if quantity == "value" and compared:
            raise ValueError("lhs/rhs and vs_metric compare two numbers: use ratio_* or "
                             "diff_* bounds")
        if quantity != "value" and not compared:
            raise ValueError(f"{quantity}_* bounds compare two numbers: give lhs and rhs, "
                             "or vs_metric")

    def derived_id(self) -> str:
        """A stable id for an entry written without one: the metric and a short hash of
        the entry's content."""
        blob = json.dumps(self.model_dump(exclude={"id", "text"}), sort_keys=True,
                          default=str)
        return f"{self.metric}-{hashlib.sha256(blob.encode()).hexdigest()[:6]}"

    def describe_what(self, quantity: str) -> str:
        what = self.metric
        if quantity != "value":
            sep = " / " if quantity == "ratio" else " - "
            if self.vs_metric is not None:
                what = f"{self.metric}{sep}{self.vs_metric}"
            else:
                what = (f"{self.metric}[{_sel_text(self.lhs)}]{sep}"
                        f"{self.metric}[{_sel_text(self.rhs)}]")
        if self.where:
            what += f" where {_sel_text(self.where)}"
        return what


class Claim(Measure):
    """A paper's claim, checked on the aggregates of every run.

    Either a bound on one metric (``at_least``/``at_most``/``above``/``below``) for the
    groups that ``where`` selects, or a comparison (``lhs`` vs ``rhs`` groups, or
    ``metric`` vs ``vs_metric``) with ``ratio_*`` or ``diff_*`` bounds. ``xfail: reason``
    marks a claim that, measured honestly, does not reproduce at this scale: it is
    reported XFAIL and does not fail the run; if it passes (XPASS) the run fails, so that
    the marker gets removed. ``requires: [ids]`` makes it a conjunction: it passes only when
    its own bound holds and every claim named there passes too.
    """

    min_seeds: StrictInt | None = Field(None, ge=1,
                                        description="with on: each_seed, how many must pass")
    xfail: str | None = Field(None, min_length=1, description="why this claim is expected to "
                              "fail at this scale (strict: a pass fails the run)")
    requires: list[str] = Field(default_factory=list,
                                description="ids of claims that must pass too for this one to "
                                            "pass: 'A, at B' (e.g. a gain at bounded cost)")
    at_least: float | None = None
    at_most: float | None = None
    above: float | None = None
    below: float | None = None
    ratio_at_least: float | None = None
    ratio_at_most: float | None = None
    ratio_above: float | None = None
    ratio_below: float | None = None
    diff_at_least: float | None = None
    diff_at_most: float | None = None
    diff_above: float | None = None
    diff_below: float | None = None

    def bounds(self) -> tuple[str, list[tuple[str, float]]]:
        """(quantity, [(op, threshold), ...])."""
        found: dict[str, list[tuple[str, float]]] = {}
        for q in QUANTITIES:
            for op in BOUND_OPS:
                key = op if q == "value" else f"{q}_{op}"
                val = getattr(self, key)
                if val is not None:
                    found.setdefault(q, []).append((op, float(val)))
        (quantity, ops), = found.items()
        return quantity, ops

    @model_validator(mode="after")
    def _check(self) -> Claim:
        quantities = set()
        for q in QUANTITIES:
            for op in BOUND_OPS:
                key = op if q == "value" else f"{q}_{op}"
                if getattr(self, key) is not None:
                    quantities.add(q)
        if not quantities:
            raise ValueError("a claim needs a bound: at_least, at_most, above, below, "
                             "or ratio_*/diff_* with lhs and rhs")
        if len(quantities) > 1:
            raise ValueError("a claim bounds one quantity: value, ratio_* or diff_*, not several")
        quantity = quantities.pop()
        self._check_pairing(quantity)
        _, ops = self.bounds()
        if any(not math.isfinite(thr) for _, thr in ops):
            raise ValueError("a bound must be a finite number")
        lows = [thr for op, thr in ops if op in ("at_least", "above")]
        highs = [thr for op, thr in ops if op in ("at_most", "below")]
        if lows and highs and max(lows) >= min(highs) and not (
                max(lows) == min(highs) and ("at_least", max(lows)) in ops
                and ("at_most", min(highs)) in ops):
            raise ValueError(f"the bounds contradict each other: no value is >= "
                             f"{max(lows):g} and <= {min(highs):g}; this claim can never pass")
        if self.min_seeds is not None and self.on != "each_seed":
            raise ValueError("min_seeds goes with on: each_seed")
        return self

    def describe(self) -> str:
        if self.text:
            return self.text
        quantity, ops = self.bounds()
        what = self.describe_what(quantity)
        cond = " and ".join(f"{BOUND_OPS[op]} {thr:g}" for op, thr in ops)
        scope = "mean over seeds" if self.on == "mean" else (
            f"on >= {self.min_seeds} seeds" if self.min_seeds else "on every seed")
        return f"{what} {cond} ({scope})"


def _sel_text(sel: Any) -> str:
    if isinstance(sel, dict):
        return ",".join(f"{k}={v}" for k, v in sel.items())
    return str(sel)


class ReportItem(Measure):
    """A number shown beside the claims and never counted as one: a metric of the groups
    ``where`` selects (``as: value``), or the ratio or difference of two groups or two
    metrics (``as: ratio`` / ``as: diff``)."""

    as_: Literal["value", "ratio", "diff"] = Field("value", alias="as")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _check(self) -> ReportItem:
        self._check_pairing(self.as_)
        return self

    def describe(self) -> str:
        scope = "mean over seeds" if self.on == "mean" else "per seed"
        return self.text or f"{self.describe_what(self.as_)} ({scope})"


class Control(Strict):
    """A named variant of the spec that a reader accepts as broken (the method without its
    key idea, or a plausible bug), and the claims it must make fail."""

    name: str = Field(description="short name (letters, digits, _ . + -); results go to "
                      "OUT/controls/<name>/")
    text: str = Field("", description="what this control breaks, in words")
    set: dict[str, Any] = Field(default_factory=dict,
                                description="param path -> value, as `--set PATH=VALUE`")
    seeds: list[Seed] | None = Field(None, min_length=1,
                                    description="default: the spec's seeds")
    cells: CellFilter | None = Field(None, description="restrict the control's cells")
    must_fail: list[str] = Field(min_length=1, description="ids of the claims this control "
                                 "must make fail")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not ID_RE.match(v):
            raise ValueError("use letters, digits and _ . + - only (at most 64)")
        return v


class SpecModel(Strict):
    """The top level of a spec file."""

    name: str = Field(description="short name of the spec (letters, digits, _ . + -)")
    description: str = ""
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1,
                              description="integers in [0, 2^63 - 1], no duplicates")
    datasets: dict[Name, Component] = Field(default_factory=dict)
    models: dict[Name, Component] = Field(default_factory=dict)
    methods: dict[Name, Component] = Field(min_length=1)
    metrics: list[Component] = Field(default_factory=list)
    sweep: dict[str, list[Any]] = Field(default_factory=dict,
                                        description="param path -> values, expanded as a grid")
    cells: CellFilter = Field(default_factory=lambda: CellFilter())
    expect: list[Claim] = Field(default_factory=list)
    report: list[ReportItem] = Field(default_factory=list,
                                     description="numbers shown beside the claims, not claims")
    controls: list[Control] = Field(default_factory=list,
                                    description="variants of the spec that must break claims")
    settings: Settings = Field(default_factory=lambda: Settings())

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(NAME_RULE)
        return v

