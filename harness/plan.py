"""The run plan: a spec expanded once into its cells, each with its identity and status.

``make_plan`` is the one place a spec is expanded for a run. ``harness run``, ``plan``,
``verify``, the controls and every executor consume the :class:`RunPlan`; the summary is
built from the plan and the records, never by expanding the spec again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import datacache
from .adapter import Component
from .cells import Cell, expand
from .context import Progress, RunContext
from .fingerprint import cell_identity
from .results import ResultsDir
from .spec import Spec


@dataclass
class CellPlan:
    """Everything needed to execute one cell, picklable for worker processes."""

    cell_id: str
    name: str
    seed: int
    data_seed: int
    model_seed: int
    spec_seed: int
    dataset: Component | None
    model: Component | None
    method: Component
    metrics: list[Component]
    config: dict[str, Any]
    versions: dict[str, str]
    settings: dict[str, Any]
    spec_source: str = ""
    spec_hash: str = ""
    cache_dir: str = ".harness-cache"
    identity: str = ""
    data_fingerprint: str = ""
    status: str = "todo"  # "todo" or "done" (an ok record with this identity exists)

    @classmethod
    def from_cell(cls, cell: Cell, spec: Spec, cache_dir: Path) -> CellPlan:
        model_seed, seed = (cell.paired_seeds() if spec.model.settings.common_random_numbers
                            else (cell.seed, cell.seed))
        return cls(cell_id=cell.id, name=cell.name, seed=seed, data_seed=cell.data_seed,
                   model_seed=model_seed, spec_seed=cell.spec_seed,
                   dataset=cell.dataset_component, model=cell.model_component,
                   method=cell.method_component, metrics=cell.metrics,
                   config=cell.config(), versions=cell.versions(),
                   settings=spec.model.settings.model_dump(exclude={"jobs"}),
                   spec_source=spec.source,
                   spec_hash=spec.hash(), cache_dir=str(cache_dir))

    @property
    def group(self) -> str:
        return str(self.config["group"])


def load_data(plan: CellPlan, progress: Progress | None = None) -> tuple[Any, str]:
    """The cell's data and its fingerprint, loaded once per process per (config, seed)."""
    if plan.dataset is None:
        return None, "none"
    import torch
    like = RunContext(seed=plan.data_seed, device=torch.device(plan.settings["device"]),
                      work_dir=Path(plan.cache_dir) / "scratch", cache_dir=Path(plan.cache_dir),
                      progress=progress or Progress(), spec_seed=plan.spec_seed)
    return datacache.load_with_fingerprint(plan.dataset, plan.data_seed, like)


@dataclass
class RunPlan:
    """A spec's cells with identities and status, for one results folder."""

    spec: Spec
    out_dir: Path
    cells: list[CellPlan]
    control: str | None = None
    controls: dict[str, RunPlan] = field(default_factory=dict)

    @property
    def todo(self) -> list[CellPlan]:
        return [c for c in self.cells if c.status != "done"]

    @property
    def done(self) -> list[CellPlan]:
        return [c for c in self.cells if c.status == "done"]

    @property
    def adapters(self) -> list[str]:
        return sorted({name for c in self.cells for name in c.versions})


def data_fingerprint(plan: CellPlan, use_disk_cache: bool = True) -> str:
    """The fingerprint of a cell's data: from the disk cache when known, else loaded."""
    if plan.dataset is None:
        return "none"
    cache_dir = Path(plan.cache_dir)
    if use_disk_cache:
        known = datacache.cached_fingerprint(plan.dataset, plan.data_seed, cache_dir)
        if known is not None:
            return known
    try:
        _, value = load_data(plan)
    except Exception:  # let the executor record the failure properly
        return "unloadable"
    datacache.store_fingerprint(plan.dataset, plan.data_seed, cache_dir, value)
    return value


def make_plan(spec: Spec, out_dir: Path, cache_dir: Path, force: bool = False) -> RunPlan:
    """Expand ``spec`` once; a cell is done when its record is ok with the same identity.

    Data is loaded only to fingerprint it when the fingerprint is not on disk yet (see
    :mod:`harness.datacache`); ``force`` always loads."""
    results = ResultsDir(out_dir)
    cells: list[CellPlan] = []
    for cell in expand(spec):
        plan = CellPlan.from_cell(cell, spec, cache_dir)
        plan.data_fingerprint = data_fingerprint(plan, use_disk_cache=not force)
        plan.identity = cell_identity(plan.config, plan.versions, plan.data_fingerprint,
                                      plan.settings)
        record = None if force else results.read_record(plan.cell_id)
        if record and record.get("status") == "ok" and record.get("identity") == plan.identity:
            plan.status = "done"
        cells.append(plan)
    return RunPlan(spec=spec, out_dir=Path(out_dir), cells=cells, control=spec.control)
