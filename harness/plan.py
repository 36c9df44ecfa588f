"""The run plan: a spec expanded once into its cells, each with its identity and status.

``make_plan`` is the one place a spec is expanded for a run. ``harness run``, ``plan``,
``verify``, the controls and every executor consume the :class:`RunPlan`; the summary is
built from the plan and the records, never by expanding the spec again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import datacache
from .adapter import Component
from .cells import Cell, expand
from .errors import HarnessError
from .results import ResultsDir
from .selectors import matches

if TYPE_CHECKING:
    from .context import Progress
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
    timeout_s: float | None = None  # settings.timeout_s: executors stop a cell running longer
    out_root: str = ""  # the results folder, when one executor call serves several plans

    @classmethod
    def from_cell(cls, cell: Cell, spec: Spec, cache_dir: Path) -> CellPlan:
        model_seed, seed = (cell.paired_seeds() if spec.model.settings.common_random_numbers
                            else (cell.seed, cell.seed))
        return cls(cell_id=cell.id, name=cell.name, seed=seed, data_seed=cell.data_seed,
                   model_seed=model_seed, spec_seed=cell.spec_seed,
                   dataset=cell.dataset_component, model=cell.model_component,
                   method=cell.method_component, metrics=cell.metrics,
                   config=cell.config(), versions=cell.versions(),
                   settings=spec.model.settings.model_dump(exclude={"jobs", "timeout_s"}),
                   timeout_s=spec.model.settings.timeout_s, spec_source=spec.source,
                   spec_hash=spec.hash(), cache_dir=str(cache_dir))

    @property
    def group(self) -> str:
        return str(self.config["group"])


def load_data(plan: CellPlan, progress: Progress | None = None) -> tuple[Any, str]:
    """The cell's data and its fingerprint, loaded once per process per (config, seed);
    with ``settings["limit"]`` (``--limit N``) the first N examples of each split."""
    if plan.dataset is None:
        return None, "none"
    import torch

    from .context import Progress, RunContext
    like = RunContext(seed=plan.data_seed, device=torch.device(plan.settings["device"]),
                      work_dir=Path(plan.cache_dir) / "scratch", cache_dir=Path(plan.cache_dir),
                      progress=progress or Progress(), spec_seed=plan.spec_seed)
    data, fp = datacache.load_with_fingerprint(plan.dataset, plan.data_seed, like)
    limit = plan.settings.get("limit")
    if limit:
        data = limit_data(data, int(limit), plan.dataset.label)
    return data, fp


def limit_data(data: Any, n: int, label: str = "the dataset") -> Any:
    """The first ``n`` examples of each split of ``data`` (a new object; tensors shared).

    Understood: an object with a ``limit(n)`` method, :class:`harness.ClassificationData`,
    a Hugging Face ``datasets.Dataset`` (``select``), a list or tuple, and a dict of those
    (e.g. splits by name)."""
    from .data import ClassificationData
    if hasattr(data, "limit") and callable(data.limit):
        return data.limit(n)
    if isinstance(data, ClassificationData):
        n_train = data.n_train
        meta = {k: (v[:n] if hasattr(v, "__len__") and hasattr(v, "__getitem__")
                    and not isinstance(v, str) and len(v) == n_train else v)
                for k, v in data.meta.items()}
        return data.with_(x_train=data.x_train[:n], y_train=data.y_train[:n],
                          x_test=data.x_test[:n], y_test=data.y_test[:n], meta=meta)
    if hasattr(data, "select") and hasattr(data, "__len__"):
        return data.select(range(min(n, len(data))))
    if isinstance(data, (list, tuple)):
        return data[:n]
    if isinstance(data, dict) and data:
        return {k: limit_data(v, n, label) for k, v in data.items()}
    raise HarnessError(f"--limit: the data of {label!r} ({type(data).__name__}) cannot be "
                       "limited to N examples",
                       hint="run without --limit, or give the data class a `limit(n)` method "
                       "(docs/writing-an-adapter.md)")


@dataclass
class RunPlan:
    """A spec's cells with identities and status, for one results folder."""

    spec: Spec
    out_dir: Path
    cells: list[CellPlan]
    control: str | None = None
    controls: dict[str, RunPlan] = field(default_factory=dict)
    adopt_from: Path | None = None  # a results folder whose same-identity ok cells are copied

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


def make_plan(spec: Spec, out_dir: Path, cache_dir: Path, force: bool = False, *,
              only: list[dict[str, Any]] | None = None, limit: int | None = None) -> RunPlan:
    """Expand ``spec`` once; a cell is done when its record is ok with the same identity.

    ``only`` keeps the cells whose axes match one of its selectors (``--only``); ``limit``
    caps the examples per split (``--limit``) and is part of every cell's identity
    (settings), so a quick look never passes for a full run. Data is loaded only to
    fingerprint it when the fingerprint is not on disk yet (see :mod:`harness.datacache`);
    ``force`` always loads."""
    from .fingerprint import cell_identity
    results = ResultsDir(out_dir)
    cells: list[CellPlan] = []
    for cell in expand(spec):
        if only and not any(matches(cell.axes, sel) for sel in only):
            continue
        plan = CellPlan.from_cell(cell, spec, cache_dir)
        if limit:
            plan.settings["limit"] = int(limit)
        plan.data_fingerprint = data_fingerprint(plan, use_disk_cache=not force)
        plan.identity = cell_identity(plan.config, plan.versions, plan.data_fingerprint,
                                      plan.settings)
        record = None if force else results.read_record(plan.cell_id)
        if record and record.get("status") == "ok" and record.get("identity") == plan.identity:
            plan.status = "done"
        cells.append(plan)
    if not cells:
        raise HarnessError(f"--only: no cell of the spec matches {only}",
                           hint="`harness plan SPEC` lists the cells and their axes")
    return RunPlan(spec=spec, out_dir=Path(out_dir), cells=cells, control=spec.control)
