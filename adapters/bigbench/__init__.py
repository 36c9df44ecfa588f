"""BIG-bench JSON tasks (Srivastava et al., arXiv 2206.04615): dataset ``bigbench/task``,
method ``bigbench/evaluate``, metrics ``bigbench/metrics`` and ``bigbench/bootstrap``, and
a report section that sets the model beside BIG-bench's human raters and chance."""

from __future__ import annotations

from typing import Any

from harness import Adapter, hookimpl

from .dataset import BigBenchTask
from .evaluate import Evaluate
from .metrics import METRICS
from .report import section


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    return [BigBenchTask, Evaluate, *METRICS]


@hookimpl
def harness_report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    return section(summary, out_dir)
