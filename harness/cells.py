"""Expand a spec into cells and derive each cell's seed from the spec seed and its name.

A cell is one dataset x model x method x sweep point x seed. Its *group* is the cell
without its seed: aggregates and claims work on groups.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .adapter import Component
from .errors import SpecError
from .selectors import matches, point_value_text

if TYPE_CHECKING:
    from .spec import Spec, SweepPoint

SEED_BITS = 63
ID_MAX = 120  # a cell id is a folder name: well under the usual 255-byte limit

# A cell name whose id is its plain slug: runs of safe characters separated by single
# `_`, `,` or `/` (`/` -> `__`, `,` -> `_`). Any other name gets a hash suffix, so that two
# different names never share an id (`d/m__x` and `d__m/x` would).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9.=+-]+(?:[_,/][A-Za-z0-9.=+-]+)*\Z")


def cell_id(name: str, point_values: list[str] | tuple[str, ...] = ()) -> str:
    """The folder name of a cell: injective in the cell's name (see docs/spec-reference.md)."""
    slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name.replace("/", "__"))
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    if len(slug) > ID_MAX:
        return slug[:100] + "_" + digest
    plain = _PLAIN_NAME.match(name) and not any("," in v or "=" in v for v in point_values)
    return slug if plain else f"{slug}_{digest}"


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts, stable across Python runs and platforms."""
    text = "\x1f".join(str(p) for p in parts)
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


@dataclass
class Cell:
    spec_name: str
    spec_seed: int
    point: SweepPoint
    dataset: str | None
    model: str | None
    method: str

    @property
    def axes(self) -> dict[str, Any]:
        axes: dict[str, Any] = {"dataset": self.dataset, "model": self.model,
                                "method": self.method, "point": self.point.name}
        for key, value in self.point.short.items():
            axes[key] = value
        return axes

    @property
    def group(self) -> str:
        parts = [p for p in (self.dataset, self.model, self.method) if p is not None]
        if self.point.name:
            parts.append(self.point.name)
        return "/".join(parts)

    @property
    def name(self) -> str:
        return f"{self.group}/seed={self.spec_seed}"

    @property
    def id(self) -> str:
        return cell_id(self.name, [point_value_text(v) for v in self.point.values.values()])

    @property
    def metrics(self) -> list[Component]:
        """The spec's metrics that apply to this cell (a metric's ``where:`` selects)."""
        wheres = self.point.metric_where or [{}] * len(self.point.metrics)
        return [m for m, w in zip(self.point.metrics, wheres, strict=True)
                if matches(self.axes, w)]

    @property
    def seed(self) -> int:
        """The cell's own seed: from the spec seed and the group name."""
        return derive_seed(self.spec_seed, self.group)

    def paired_seeds(self) -> tuple[int, int]:
        """(model seed, method seed) under common random numbers: every method and sweep
        point on the same dataset and model starts from the same initialization and draws
        the same random stream (paired comparisons)."""
        return (derive_seed(self.spec_seed, "model", self.dataset, self.model),
                derive_seed(self.spec_seed, "method", self.dataset, self.model))

    @property
    def data_seed(self) -> int:
        """The dataset's seed: shared by every cell on the same dataset and spec seed."""
        return derive_seed(self.spec_seed, "dataset", self.dataset)

    @property
    def dataset_component(self) -> Component | None:
        return self.point.datasets[self.dataset] if self.dataset else None

    @property
    def model_component(self) -> Component | None:
        return self.point.models[self.model] if self.model else None

    @property
    def method_component(self) -> Component:
        return self.point.methods[self.method]

    def config(self) -> dict[str, Any]:
        """The fully resolved description of this cell (what its identity hashes)."""
        def cfg(c: Component | None) -> Any:
            return c.config() if c is not None else None
        return {
            "spec": self.spec_name, "name": self.name, "group": self.group,
            "spec_seed": self.spec_seed, "seed": self.seed, "data_seed": self.data_seed,
            "paired_seeds": list(self.paired_seeds()),
            "axes": self.axes, "sweep": {k: v for k, v in self.point.values.items()},
            "dataset": cfg(self.dataset_component), "model": cfg(self.model_component),
            "method": cfg(self.method_component),
            "metrics": [m.config() for m in self.metrics],
        }

    def versions(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for comp in (self.dataset_component, self.model_component, self.method_component,
                     *self.metrics):
            if comp is not None:
                out.update(comp.versions())
        return dict(sorted(out.items()))


def expand(spec: Spec) -> list[Cell]:
    cells: list[Cell] = []
    flt = spec.model.cells
    for seed in spec.seeds:
        for point in spec.points:
            datasets: list[str | None] = list(point.datasets) or [None]
            models: list[str | None] = list(point.models) or [None]
            for dataset in datasets:
                for model in models:
                    for method in point.methods:
                        cell = Cell(spec.name, seed, point, dataset, model, method)
                        axes = cell.axes
                        if flt.only is not None and not any(matches(axes, s) for s in flt.only):
                            continue
                        if any(matches(axes, s) for s in flt.exclude):
                            continue
                        cells.append(cell)
    if not cells:
        key = "only" if flt.only is not None else "exclude"
        raise SpecError("the spec expands to no cells", location=spec.doc.where(("cells", key)),
                        path=f"cells.{key}", hint="loosen `cells.only` / `cells.exclude`")
    _check_injective(spec, cells)
    return cells


def _check_injective(spec: Spec, cells: list[Cell]) -> None:
    """Two different cells must never share a name or a folder (one record for two)."""
    for what, key in (("name", lambda c: c.name), ("id", lambda c: c.id)):
        seen: dict[str, Cell] = {}
        for cell in cells:
            other = seen.setdefault(key(cell), cell)
            if other is not cell:
                raise SpecError(
                    f"cells {other.name!r} and {cell.name!r} get the same {what} "
                    f"{key(cell)!r}", location=spec.doc.where(("sweep",) if spec.model.sweep
                                                            else ("methods",)),
                    hint="rename a component or change a sweep value so that they differ")
