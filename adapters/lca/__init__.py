"""Loss Change Allocation (Lan et al., arXiv 1909.01440): a training observer that
allocates every step's change of the full training loss to the parameters, usable with
any training method that calls observers, plus its summary metric and plots."""

from __future__ import annotations

from harness import Adapter, hookimpl

from .metrics import LCAPlots, LCASummary
from .observer import LossChangeAllocation


@hookimpl
def harness_adapters() -> list[type[Adapter]]:
    return [LossChangeAllocation, LCASummary, LCAPlots]
