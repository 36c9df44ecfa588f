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
from .selectors import matches

if TYPE_CHECKING:
    from .spec import Spec, SweepPoint

SEED_BITS = 63


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
        slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", self.name.replace("/", "__"))
        if len(slug) > 120:
            slug = slug[:100] + "_" + hashlib.sha256(self.name.encode()).hexdigest()[:12]
        return slug

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
        raise SpecError("the spec expands to no cells", location=spec.doc.where(("cells",)),
                        path="cells", hint="loosen `cells.only` / `cells.exclude`")
    return cells
