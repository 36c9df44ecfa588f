"""harness: a declarative, spec-driven benchmark harness for machine-learning methods.

The public API for adapter authors is exactly the names in ``__all__``; everything else
in the package is private and may change::

    import harness
    class MyData(harness.Dataset): ...
    @harness.hookimpl
    def harness_adapters(): return [MyData]

The names are imported on first use, so ``import harness`` (and ``harness --help``) does
not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # adapters and their params
    "Adapter": "adapter", "Dataset": "adapter", "Model": "adapter", "Method": "adapter",
    "Metric": "adapter", "Params": "adapter", "Component": "adapter",
    "component_field": "adapter", "CellResult": "adapter",
    # what every adapter call receives, and the error users can fix
    "RunContext": "context", "HarnessError": "errors",
    # training components: optimizers, example selection, observers
    "OptimizerAdapter": "training", "SelectionPolicy": "training",
    "TrainingObserver": "training", "TrainingRun": "training", "StepInfo": "training",
    # the shared classification data container
    "ClassificationData": "data",
    # the plugin hook marker
    "hookimpl": "hookspecs",
}

__all__ = ["Adapter", "CellResult", "ClassificationData", "Component", "Dataset",
           "HarnessError", "Method", "Metric", "Model", "OptimizerAdapter", "Params",
           "RunContext", "SelectionPolicy", "StepInfo", "TrainingObserver", "TrainingRun",
           "component_field", "hookimpl", "__version__"]
assert set(__all__) == {*_EXPORTS, "__version__"}

if TYPE_CHECKING:
    from .adapter import (
        Adapter,
        CellResult,
        Component,
        Dataset,
        Method,
        Metric,
        Model,
        Params,
        component_field,
    )
    from .context import RunContext
    from .data import ClassificationData
    from .errors import HarnessError
    from .hookspecs import hookimpl
    from .training import OptimizerAdapter, SelectionPolicy, StepInfo, TrainingObserver, TrainingRun


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
