"""RxRx1 batch-effect correction (Sypetkowski et al., "RxRx1: A Dataset for Evaluating
Experimental Batch Correction Methods", arXiv 2301.05768).

A synthetic screen with RxRx1's nested batch design (``rxrx1/synthetic``), the real data
from a local folder (``rxrx1/images``), batch corrections as components of kind
``correction`` that any classifier training takes (``torch/train-classifier``'s
``correction`` param), a small CNN, a method that trains one classifier per correction
(``rxrx1/benchmark``) and metrics for generalization to unseen experiments. Sources:
recursionpharma/rxrx1-utils (layout, metadata), p-lambda/wilds (split, per-image
standardization, Deep CORAL), maciej-sypetkowski/kaggle-rcic-1st (normalizations,
``--pw-aug``, plate groups). See docs/rxrx1.md.
"""

from __future__ import annotations

from typing import Any

from harness import Adapter, hookimpl


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    # imported here, not at the top: a run that only calls this plugin's other
    # hooks imports none of its adapter modules (harness.manifest)
    from .adapt import ADAPTIVE
    from .benchmark import Benchmark
    from .images import RxRx1Images
    from .metrics import METRICS
    from .model import CellCNNModel
    from .regularize import REGULARIZERS
    from .standardize import STANDARDIZATIONS
    from .synthetic import SyntheticScreen
    return [SyntheticScreen, RxRx1Images, CellCNNModel, Benchmark, *STANDARDIZATIONS,
            *ADAPTIVE, *REGULARIZERS, *METRICS]


@hookimpl
def harness_report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    if "rxrx1/benchmark" not in summary.get("adapters", []):
        return []
    from .report import report_sections
    return report_sections(summary, out_dir)
