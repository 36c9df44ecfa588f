"""Executors run cell plans: in this process, or in a local pool of worker processes.

More (a cluster engine) come from plugins through the ``harness_executors`` hook: a
class with a ``name`` and ``run(plans, out_dir, on_done, on_step)``.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, ClassVar

from .plan import CellPlan
from .runner import execute_cell

OnDone = Callable[[CellPlan, dict[str, Any]], None]
OnStep = Callable[[str, str, int, "int | None"], None]


class Executor:
    name: ClassVar[str] = ""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def run(self, plans: list[CellPlan], out_dir: str, on_done: OnDone, on_step: OnStep) -> None:
        raise NotImplementedError


class InProcessExecutor(Executor):
    """Runs cells one after another in this process (the default)."""

    name = "inprocess"

    def run(self, plans: list[CellPlan], out_dir: str, on_done: OnDone, on_step: OnStep) -> None:
        for plan in plans:
            on_step(plan.name, "start", 0, None)

            def step(label: str, done: int, total: int | None, _name: str = plan.name) -> None:
                on_step(_name, label, done, total)

            on_done(plan, execute_cell(plan, out_dir, step))


class PoolExecutor(Executor):
    """Runs cells in ``--jobs`` worker processes (spawned, one torch thread set each)."""

    name = "pool"

    def run(self, plans: list[CellPlan], out_dir: str, on_done: OnDone, on_step: OnStep) -> None:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, self.jobs), mp_context=ctx) as pool:
            futures = {pool.submit(execute_cell, plan, out_dir): plan for plan in plans}
            for plan in plans:
                on_step(plan.name, "queued", 0, None)
            for future in as_completed(futures):
                on_done(futures[future], future.result())


BUILTIN_EXECUTORS: list[type[Executor]] = [InProcessExecutor, PoolExecutor]
