"""The core's own plugin: the built-in executors, registered like any plugin."""

from __future__ import annotations

from .executors import BUILTIN_EXECUTORS, Executor
from .hookspecs import hookimpl


@hookimpl
def harness_executors() -> list[type[Executor]]:
    from .dask_executor import DaskExecutor  # imports dask only when it runs
    return [*BUILTIN_EXECUTORS, DaskExecutor]
