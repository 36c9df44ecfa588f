"""The default example-selection policy: every candidate is backpropagated."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.training import SelectionPolicy

if TYPE_CHECKING:
    import torch


class UniformSelection(SelectionPolicy):
    """Uniform minibatches: keep every candidate (plain SGD sampling)."""

    name = "selection/uniform"

    def select(self, candidates: torch.Tensor,
               losses_of: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        return candidates
