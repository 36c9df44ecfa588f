"""Component kinds that plug into training loops: optimizers, example-selection policies
and observers. Any training method that accepts them composes with every paper's
components (an FOP optimizer, a selective-backprop policy, an LCA observer).

A training method calls, per optimizer step:

1. ``policy.select(candidates, losses_of)`` -> the indices to backpropagate;
2. forward/backward on the selected batch, then ``optimizer.step()``;
3. ``observer.on_step(StepInfo)`` with the parameters before and after the step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .adapter import Adapter

if TYPE_CHECKING:
    import torch

    from .context import RunContext

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


class OptimizerAdapter(Adapter):
    """Builds a ``torch.optim.Optimizer`` for a model (all its trainable parameters)."""

    kind: ClassVar[str] = "optimizer"

    def build(self, ctx: RunContext, model: torch.nn.Module,
              params: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
        """``params`` restricts the optimizer to some parameters (e.g. one task's scores)."""
        raise NotImplementedError

    @staticmethod
    def trainable(model: torch.nn.Module, params: list[torch.nn.Parameter] | None
                  ) -> list[torch.nn.Parameter]:
        """What ``build`` optimizes: ``params`` when given, else the model's parameters
        that require gradients."""
        return list(params) if params is not None else [p for p in model.parameters()
                                                        if p.requires_grad]


class SelectionPolicy(Adapter):
    """Chooses which candidate examples are backpropagated at each step."""

    kind: ClassVar[str] = "selection"
    needs_losses: ClassVar[bool] = False

    def start(self, ctx: RunContext, n_train: int) -> None:
        self.ctx = ctx

    def select(self, candidates: torch.Tensor,
               losses_of: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Return the subset of ``candidates`` (example indices) to backpropagate.

        ``losses_of(indices)`` gives per-example losses without gradients (one forward
        pass each; the training loop counts them)."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {}


@dataclass
class TrainingRun:
    """What an observer may look at: the model, the loss, the full training set."""

    model: torch.nn.Module
    loss_fn: LossFn  # per-example losses from (logits, targets)
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    optimizer: torch.optim.Optimizer | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepInfo:
    step: int
    before: dict[str, torch.Tensor]
    after: dict[str, torch.Tensor]
    batch: torch.Tensor
    loss: float


class TrainingObserver(Adapter):
    """Sees every optimizer step with the parameters before and after it."""

    kind: ClassVar[str] = "observer"

    def on_start(self, ctx: RunContext, run: TrainingRun) -> None:
        self.ctx = ctx
        self.run = run

    def on_step(self, info: StepInfo) -> None:
        raise NotImplementedError

    def on_end(self) -> dict[str, Any]:
        """Outputs, kept under ``outputs["observers"][adapter name]``."""
        return {}


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


class Correction(Adapter):
    """Corrects a dataset's batch effects around a classifier training (kind ``correction``).

    A training method that takes a correction calls, in order:

    1. ``prepare(ctx, data) -> data`` before training (e.g. standardize every split's
       inputs per batch; the returned data replaces the given one);
    2. ``train_loss(model, x, y, batch)`` for each optimizer step's loss (e.g. an
       augmentation or a penalty added to the cross-entropy); ``batch`` holds the
       training-set indices of ``x``;
    3. ``finish(ctx, model, data)`` after training (e.g. fit a head on corrected features);
    4. ``predict(model, x, split)`` for evaluation logits (``split`` names the split of
       ``x``, e.g. ``"test"``; e.g. batch-norm statistics recomputed per test batch).

    ``transductive`` says whether evaluation needs a whole test batch, not one example.
    """

    kind: ClassVar[str] = "correction"
    transductive: ClassVar[bool] = False

    def prepare(self, ctx: RunContext, data: Any) -> Any:
        return data

    def train_loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   batch: torch.Tensor) -> torch.Tensor:
        import torch
        return torch.nn.functional.cross_entropy(model(x), y)

    def finish(self, ctx: RunContext, model: torch.nn.Module, data: Any) -> None:
        return None

    def predict(self, model: torch.nn.Module, x: torch.Tensor, split: str,
                chunk: int = 4096) -> torch.Tensor:
        import torch
        was = model.training
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)])
        model.train(was)
        return out
