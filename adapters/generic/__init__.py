"""Generic adapters: scikit-learn's bundled datasets, a Gaussian mixture, MLP and CNN
models, the hookable classifier training, torch optimizers and standard metrics."""

from __future__ import annotations

from harness import Adapter, hookimpl

from .datasets import DATASETS
from .metrics import METRICS
from .models import MODELS
from .optimizers import OPTIMIZERS
from .selection import UniformSelection
from .training import TrainClassifier


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    return [*DATASETS, *MODELS, TrainClassifier, *OPTIMIZERS, UniformSelection, *METRICS]
