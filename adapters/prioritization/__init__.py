"""Loss-based prioritization under noise (Hu, Hu, Liu, Hooker & Yosinski, arXiv:2107.07741).

Selection policies for ``torch/train-classifier`` (``selection/selective-backprop``,
``selection/top-loss``), noise wrappers for any classification dataset
(``noise/label-noise``, ``noise/input-corruption``), metrics (noisy share of backprops,
passes to a target accuracy, curves), a selection-trace observer, and the report figure.
"""

from __future__ import annotations

from typing import Any

from harness import Adapter, hookimpl


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    # imported here, not at the top: a run that only calls this plugin's other
    # hooks imports none of its adapter modules (harness.manifest)
    from .metrics import METRICS, SelectionTrace
    from .noise import NOISE
    from .selection import SELECTION
    return [*SELECTION, *NOISE, *METRICS, SelectionTrace]


@hookimpl
def harness_report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    from .plots import report_sections
    return report_sections(summary, out_dir)
