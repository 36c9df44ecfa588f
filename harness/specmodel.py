"""The pydantic models of a spec's top level, its claims and its cell filters."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .adapter import Component

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
AXES = ("dataset", "model", "method", "point")
BOUND_OPS = {"at_least": ">=", "at_most": "<=", "above": ">", "below": "<"}
QUANTITIES = ("value", "ratio", "diff")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Selector = dict[str, Any]


class Settings(Strict):
    """How cells run; recorded in every record and part of each cell's identity."""

    threads: int = Field(1, ge=1, description="torch intra-op threads per cell")
    jobs: int = Field(1, ge=1, description="cells run at once (worker processes) unless "
                      "`--jobs` says otherwise; does not change results")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda")
    deterministic: bool = Field(True, description="torch deterministic algorithms")
    common_random_numbers: bool = Field(
        False, description="every method and sweep point on the same dataset and model "
        "starts from the same model initialization and random stream (paired comparisons)")


class CellFilter(Strict):
    """Restrict the product of datasets x models x methods x sweep points."""

    only: list[Selector] | None = Field(None, description="keep cells matching any selector")
    exclude: list[Selector] = Field(default_factory=list,
                                    description="drop cells matching any selector")


class Claim(Strict):
    """A paper's claim, checked on the aggregates of every run.

    Either a bound on one metric (``at_least``/``at_most``/``above``/``below``) for the
    groups that ``where`` selects, or a comparison of two groups (``lhs`` vs ``rhs``,
    ``ratio_*`` or ``diff_*`` bounds), on the mean over seeds or on each seed.
    """

    metric: str
    text: str | None = None
    where: Selector = Field(default_factory=dict)
    lhs: str | Selector | None = None
    rhs: str | Selector | None = None
    on: Literal["mean", "each_seed"] = "mean"
    min_seeds: int | None = Field(None, ge=1, description="with on: each_seed, how many must pass")
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
        paired = self.lhs is not None or self.rhs is not None
        if paired and (self.lhs is None or self.rhs is None):
            raise ValueError("a comparison needs both lhs and rhs")
        if quantity == "value" and paired:
            raise ValueError("lhs/rhs compare two groups: use ratio_* or diff_* bounds")
        if quantity != "value" and not paired:
            raise ValueError(f"{quantity}_* bounds compare two groups: give lhs and rhs")
        if self.min_seeds is not None and self.on != "each_seed":
            raise ValueError("min_seeds goes with on: each_seed")
        return self

    def describe(self) -> str:
        if self.text:
            return self.text
        quantity, ops = self.bounds()
        what = self.metric
        if quantity != "value":
            sep = " / " if quantity == "ratio" else " - "
            what = f"{self.metric}[{_sel_text(self.lhs)}]{sep}{self.metric}[{_sel_text(self.rhs)}]"
        if self.where:
            what += f" where {_sel_text(self.where)}"
        cond = " and ".join(f"{BOUND_OPS[op]} {thr:g}" for op, thr in ops)
        scope = "mean over seeds" if self.on == "mean" else (
            f"on >= {self.min_seeds} seeds" if self.min_seeds else "on every seed")
        return f"{what} {cond} ({scope})"


def _sel_text(sel: Any) -> str:
    if isinstance(sel, dict):
        return ",".join(f"{k}={v}" for k, v in sel.items())
    return str(sel)


class SpecModel(Strict):
    """The top level of a spec file."""

    name: str = Field(description="short name of the spec (letters, digits, _ . + -)")
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    datasets: dict[str, Component] = Field(default_factory=dict)
    models: dict[str, Component] = Field(default_factory=dict)
    methods: dict[str, Component] = Field(min_length=1)
    metrics: list[Component] = Field(default_factory=list)
    sweep: dict[str, list[Any]] = Field(default_factory=dict,
                                        description="param path -> values, expanded as a grid")
    cells: CellFilter = Field(default_factory=lambda: CellFilter())
    expect: list[Claim] = Field(default_factory=list)
    settings: Settings = Field(default_factory=lambda: Settings())

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("use letters, digits and _ . + - only")
        return v

    @field_validator("datasets", "models", "methods")
    @classmethod
    def _keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if not NAME_RE.match(key):
                raise ValueError(f"component name {key!r}: use letters, digits and _ . + - only")
        return v

