"""The hooks a harness plugin may implement.

A plugin is a module (or object) registered under the ``harness`` entry-point group::

    [project.entry-points.harness]
    myplugin = "myplugin.plugin"

and implements any of the hooks below, marked with ``@harness.hookimpl``. The
built-in adapters are registered through exactly these hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .adapter import Adapter
    from .executors import Executor

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_adapters() -> list[type[Adapter]]:
    """Return the adapter classes this plugin provides.

    Each class sets ``kind``, a namespaced ``name`` (``package/name``), ``version``
    and a ``Params`` model. Two plugins returning the same name is an error that
    names both.
    """
    return []


@hookspec
def harness_executors() -> list[type[Executor]]:
    """Return executor classes (``name`` attribute, ``run(jobs, on_done)``).

    ``harness run --executor NAME`` picks one; ``inprocess`` and ``pool`` are built in.
    """
    return []


@hookspec
def harness_cell_finished(record: dict[str, Any]) -> None:
    """Called in the main process after each cell's record has been written."""


@hookspec
def harness_run_finished(summary: dict[str, Any], out_dir: str) -> None:
    """Called after ``harness run`` wrote ``summary.json`` (e.g. to draw figures that
    span cells into ``out_dir``)."""


@hookspec
def harness_report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    """Return extra ``(title, html)`` sections for ``harness report`` on this summary.

    Return an empty list when the summary is not yours (look at its adapters).
    """
    return []
