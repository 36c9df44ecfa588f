"""A distributed executor on Dask (``pip install 'harness-bench[distributed]'``).

``harness run SPEC --executor dask`` starts a local cluster of ``--jobs`` worker
processes; set ``HARNESS_DASK_ADDRESS=tcp://scheduler:8786`` to use an existing cluster
instead (its workers need the harness and the plugins the spec uses installed, and the
results folder on a shared filesystem). Registered through the ``harness_executors``
hook like any third-party executor would be.
"""

from __future__ import annotations

import os
from typing import ClassVar

from .errors import HarnessError
from .executors import Executor, OnDone, OnStep
from .plan import CellPlan
from .runner import execute_cell


class DaskExecutor(Executor):
    """Runs cells as Dask tasks on a local or remote cluster."""

    name: ClassVar[str] = "dask"

    def run(self, plans: list[CellPlan], out_dir: str, on_done: OnDone, on_step: OnStep) -> None:
        try:
            from distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise HarnessError("the dask executor needs dask.distributed",
                               hint="pip install 'harness-bench[distributed]'") from None
        address = os.environ.get("HARNESS_DASK_ADDRESS")
        cluster = None
        if address:
            client = Client(address)
        else:
            cluster = LocalCluster(n_workers=max(1, self.jobs), threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            futures = {client.submit(execute_cell, plan, out_dir, pure=False): plan
                       for plan in plans}
            for plan in plans:
                on_step(plan.name, "queued", 0, None)
            for future in as_completed(list(futures)):
                on_done(futures[future], future.result())
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
