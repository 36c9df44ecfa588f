"""The networks of the official D3G/TD3 code: two-hidden-layer ReLU MLPs.

Every network is ``Linear -> ReLU -> Linear -> ReLU -> Linear`` with ``hidden`` units
(official: 256). Weights are initialised like ``torch.nn.Linear``'s default (uniform in
``+-1/sqrt(fan_in)`` for weights and biases, which is what its Kaiming-uniform with
``a=sqrt(5)`` amounts to) but drawn from an explicit generator, so that the run context is
the only source of randomness.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Sequential):
    """in -> hidden -> hidden -> out, ReLU between; an optional ``scale * tanh`` head."""

    def __init__(self, n_in: int, n_out: int, hidden: int, generator: torch.Generator,
                 tanh_scale: float | None = None) -> None:
        super().__init__(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                         nn.ReLU(), nn.Linear(hidden, n_out))
        self.tanh_scale = tanh_scale
        reset_linear(self, generator)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)
        return self.head(x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an already concatenated input (the layers called directly,
        without ``nn.Module``'s per-call dispatch: the same operations)."""
        l1, _, l2, _, l3 = self
        out = F.linear(F.relu(F.linear(F.relu(F.linear(x, l1.weight, l1.bias)),
                                       l2.weight, l2.bias)), l3.weight, l3.bias)
        if self.tanh_scale is not None:
            out = self.tanh_scale * torch.tanh(out)
        return out


class TwinQ(nn.Module):
    """Two independent Q heads on the same input (official ``Critic``: Q1, Q2)."""

    def __init__(self, n_in: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.q1 = MLP(n_in, 1, hidden, generator)
        self.q2 = MLP(n_in, 1, hidden, generator)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([a, b], dim=1)  # once for both heads, as the official Critic does
        return self.q1.head(x), self.q2.head(x)

    def Q1(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: N802 (paper name)
        return self.q1(a, b)


@torch.no_grad()
def reset_linear(module: nn.Module, generator: torch.Generator) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=generator)
            if layer.bias is not None:
                layer.bias.uniform_(-bound, bound, generator=generator)


@torch.no_grad()
def soft_update(net: nn.Module, target: nn.Module, tau: float) -> None:
    """target <- tau * net + (1 - tau) * target, parameter by parameter."""
    for p, tp in zip(net.parameters(), target.parameters(), strict=True):
        tp.mul_(1 - tau).add_(p, alpha=tau)


def adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr)
