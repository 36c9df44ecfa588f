"""torch optimizers as components: any training method takes them by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from harness import Params, RunContext
from harness.training import OptimizerAdapter

if TYPE_CHECKING:
    import torch


class SGD(OptimizerAdapter):
    """Stochastic gradient descent (torch.optim.SGD), optional momentum."""

    name = "torch/sgd"

    class Params(Params):
        lr: float = Field(0.1, gt=0)
        momentum: float = Field(0.0, ge=0, lt=1)
        nesterov: bool = False
        weight_decay: float = Field(0.0, ge=0)

    def build(self, ctx: RunContext, model: torch.nn.Module,
              params: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
        import torch
        p = self.params
        return torch.optim.SGD(self.trainable(model, params), lr=p.lr, momentum=p.momentum,
                               nesterov=p.nesterov, weight_decay=p.weight_decay)


class Momentum(SGD):
    """SGD with momentum 0.9 by default (torch.optim.SGD)."""

    name = "torch/momentum"

    class Params(SGD.Params):
        momentum: float = Field(0.9, ge=0, lt=1)


class Adam(OptimizerAdapter):
    """Adam (torch.optim.Adam)."""

    name = "torch/adam"

    class Params(Params):
        lr: float = Field(1e-3, gt=0)
        betas: tuple[float, float] = (0.9, 0.999)
        eps: float = 1e-8
        weight_decay: float = Field(0.0, ge=0)

    def build(self, ctx: RunContext, model: torch.nn.Module,
              params: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
        import torch
        p = self.params
        return torch.optim.Adam(self.trainable(model, params), lr=p.lr, betas=p.betas, eps=p.eps,
                                weight_decay=p.weight_decay)


class RMSprop(OptimizerAdapter):
    """RMSprop (torch.optim.RMSprop)."""

    name = "torch/rmsprop"

    class Params(Params):
        lr: float = Field(1e-3, gt=0)
        alpha: float = 0.99
        momentum: float = Field(0.0, ge=0, lt=1)
        weight_decay: float = Field(0.0, ge=0)

    def build(self, ctx: RunContext, model: torch.nn.Module,
              params: list[torch.nn.Parameter] | None = None) -> torch.optim.Optimizer:
        import torch
        p = self.params
        return torch.optim.RMSprop(self.trainable(model, params), lr=p.lr, alpha=p.alpha,
                                   momentum=p.momentum, weight_decay=p.weight_decay)


OPTIMIZERS: list[type[OptimizerAdapter]] = [SGD, Momentum, Adam, RMSprop]
