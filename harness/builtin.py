"""The core's own plugin: the built-in executors, registered like any plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .executors import Executor


@hookimpl
def harness_executors() -> list[type[Executor]]:
    # imported when a run asks for executors: not at start-up (they import torch)
    from .dask_executor import DaskExecutor  # imports dask only when it runs
    from .executors import BUILTIN_EXECUTORS
    return [*BUILTIN_EXECUTORS, DaskExecutor]
