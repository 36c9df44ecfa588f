"""BIG-bench JSON tasks: dataset ``bigbench/task``, method ``bigbench/evaluate``, metrics
``bigbench/metrics`` and ``bigbench/bootstrap``, and a report section that sets the model
beside BIG-bench's human raters and chance.

Paper: Srivastava et al., "Beyond the Imitation Game: Quantifying and extrapolating the
capabilities of language models", arXiv 2206.04615. Reference code: google/BIG-bench
(PyPI ``bigbench==1.0.0``). Each module's docstring states what it reproduces and how it
deviates: :mod:`.task` (prompts, few-shot draws, score ranges), :mod:`.evaluate` (scoring,
decoding, post-processing), :mod:`.scoring` (metrics, aggregation), :mod:`.source` (where
tasks come from), and :mod:`harness_adapters.lm.causal` / :mod:`harness_adapters.lm.dummy`
(the models). See docs/bigbench.md.
"""

from __future__ import annotations

from typing import Any

from harness import Adapter, hookimpl


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    # imported here, not at the top: a run that only calls this plugin's other
    # hooks imports none of its adapter modules (harness.manifest)
    from .dataset import BigBenchTask
    from .evaluate import Evaluate
    from .metrics import METRICS
    return [BigBenchTask, Evaluate, *METRICS]


@hookimpl
def harness_report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    from .report import section
    return section(summary, out_dir)
