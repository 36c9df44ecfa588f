"""Supermasks in Superposition (Wortsman et al., arXiv 2006.14769): task sequences from the
digits, masked models, the SupSup training/inference method and its NNs variant (no task
identity in training), the fine-tuning and upper-bound baselines and the continual-learning
metrics, and HopSupSup (masks recovered from a fixed-size Hopfield network).
See docs/supsup.md."""

from __future__ import annotations

from harness import Adapter, hookimpl

from .baselines import METHODS as BASELINES
from .data import DATASETS
from .hopfield import MODELS as HOP_MODELS
from .hopsupsup import METHODS as HOP
from .metrics import METRICS
from .models import MODELS
from .nns import METHODS as NNS
from .train import METHODS


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    return [*DATASETS, *MODELS, *HOP_MODELS, *METHODS, *BASELINES, *NNS, *HOP,
            *METRICS]
