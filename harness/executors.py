"""Executors run cell plans: in this process, or in a local pool of worker processes.

More (a cluster engine) come from plugins through the ``harness_executors`` hook: a
class with a ``name`` and ``run(plans, out_dir, on_done, on_step)``. A plan's
``timeout_s`` (``settings.timeout_s`` / ``--timeout``) is the wall-clock limit of its cell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .plan import CellPlan
from .runner import execute_cell
from .workers import WorkerPool

OnDone = Callable[[CellPlan, dict[str, Any]], None]
OnStep = Callable[[str, str, int, "int | None"], None]


class Executor:
    name: ClassVar[str] = ""
    # True when ``run`` writes each cell where ``plan.out_root`` says (if set) instead of
    # ``out_dir``: true of every executor that records cells with ``execute_cell`` and
    # ``write_failed_record``. The controls of a run then share one call (one pool).
    many_folders: ClassVar[bool] = False

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def run(self, plans: list[CellPlan], out_dir: str, on_done: OnDone, on_step: OnStep) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor keeps between runs (workers); called once at the end."""


class InProcessExecutor(Executor):
    """Runs cells one after another in this process (the default).

    With a timeout, a cell cannot be stopped inside this process: the cells then run one
    at a time in a single worker process (replaced when a cell times out or kills it).
    """

    name = "inprocess"
    many_folders = True

    def run(self, plans: list[CellPlan], out_dir: str, on_done: OnDone, on_step: OnStep) -> None:
        if any(plan.timeout_s is not None for plan in plans):
            WorkerPool(1).run(plans, out_dir, on_done, on_step)
            return
        for plan in plans:
            on_step(plan.name, "start", 0, None)

            def step(label: str, done: int, total: int | None, _name: str = plan.name) -> None:
                on_step(_name, label, done, total)

            on_done(plan, execute_cell(plan, out_dir, step))


class PoolExecutor(Executor):
    """Runs cells in ``--jobs`` spawned worker processes (see :mod:`harness.workers`):
    a worker that dies or times out is replaced, and workers die with the parent."""

    name = "pool"
    many_folders = True

    def __init__(self, jobs: int = 1) -> None:
        super().__init__(jobs)
        self.pool = WorkerPool(jobs, keep=True)  # the controls reuse the main run's workers

    def run(self, plans: list[CellPlan], out_dir: str, on_done: OnDone, on_step: OnStep) -> None:
        self.pool.run(plans, out_dir, on_done, on_step)

    def close(self) -> None:
        self.pool.close()


BUILTIN_EXECUTORS: list[type[Executor]] = [InProcessExecutor, PoolExecutor]
