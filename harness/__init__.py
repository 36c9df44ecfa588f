"""harness: a declarative, spec-driven benchmark harness for machine-learning methods.

The public API for adapter authors::

    import harness
    class MyData(harness.Dataset): ...
    @harness.hookimpl
    def harness_adapters(): return [MyData]
"""

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
from .errors import HarnessError
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["Adapter", "CellResult", "Component", "Dataset", "HarnessError", "Method", "Metric",
           "Model", "Params", "RunContext", "component_field", "hookimpl", "__version__"]
