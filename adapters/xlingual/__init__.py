"""Few-shot cross-lingual in-context learning: English demonstrations, non-English queries.

Paper: Winata, Madotto, Lin, Liu, Yosinski, Fung, "Language Models are Few-shot
Multilingual Learners" (arXiv 2109.07684): a pre-trained LM given a few English examples
in its context classifies non-English inputs better than chance with no parameter update;
maximum-confidence prediction (MCP) asks a true/false question per label. Calibration:
Zhao et al., "Calibrate Before Use" (arXiv 2102.09690).

Modules: :mod:`.corpus` (parallel corpora: BIG-bench multiemo, chatterbot-corpus, a folder
per language), :mod:`.datasets` (dataset adapters), :mod:`.prompts` (the prompt format),
:mod:`.scoring` (decision rules and calibration), :mod:`.icl` (method ``xlingual/icl``,
demonstration sets and their sharing), :mod:`.metrics` (``xlingual/metrics``),
:mod:`.report` (per-language table and plot). See docs/xlingual.md.
"""

from __future__ import annotations

from typing import Any

from harness import Adapter, hookimpl


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    # imported here, not at the top: a run that only calls this plugin's other
    # hooks imports none of its adapter modules (harness.manifest)
    from .datasets import DATASETS
    from .icl import CrossLingualICL
    from .metrics import METRICS
    return [*DATASETS, CrossLingualICL, *METRICS]


@hookimpl
def harness_report_sections(summary: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    from .report import section
    return section(summary, out_dir)
