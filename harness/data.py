"""Small data containers shared by adapters of different papers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class ClassificationData:
    """Tensors for a supervised classification task, train and test splits.

    ``x_*`` are float tensors of shape ``(n, *input_shape)`` (flat features for tables);
    ``y_*`` are int64 class indices. ``meta`` carries extra per-example facts, e.g. the
    indices a noise wrapper flipped (``meta["noisy"]``: a bool tensor over train).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    image_shape: tuple[int, ...] | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_features(self) -> int:
        return int(self.x_train[0].numel())

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def with_(self, **changes: Any) -> ClassificationData:
        """A copy with some fields replaced (tensors are shared, not copied)."""
        return replace(self, **changes)
