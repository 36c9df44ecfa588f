"""Models of Greydanus, Dzamba & Yosinski, "Hamiltonian Neural Networks" (arXiv 1906.01563),
following the official ``nn_models.py`` and ``hnn.py`` (greydanus/hamiltonian-nn).

Both models share the official MLP: ``Linear(d, 200) -> tanh -> Linear(200, 200) -> tanh
-> Linear(200, out, bias=False)``, every weight matrix orthogonally initialized; biases
keep PyTorch's default ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

- ``hnn/mlp``, the baseline: ``out = d``; the network's output *is* the time derivative.
- ``hnn/hnn``: ``out = 2`` scalar heads ``(F1, F2)``, as in the official code. The field is
  ``dF2/dx @ M^T`` (the official ``field_type='solenoidal'``, the default of every official
  training script and the field behind the paper's results) with the official permutation
  tensor ``M = [[0, I], [-I, 0]]`` for canonical coordinates, which gives Hamilton's
  equations ``dq/dt = dF2/dp``, ``dp/dt = -dF2/dq``: F2 is the learned Hamiltonian. The
  official ``'conservative'`` field is the plain gradient ``dF1/dx @ I`` (identity instead
  of the symplectic matrix); ``'both'`` sums the two. ``'zero'`` is an ablation, not in
  the official code: the field is identically zero (``0 * x``, so the loss still has a
  graph and the loop runs, but no parameter gets a gradient; the output layer is zeroed
  too, so the learned H is 0), a model that keeps every state frozen. ``untrained: true``
  (also an ablation) marks the model so that ``hnn/train`` takes no step. The spec's
  controls use both. Gradients are taken by autograd with ``create_graph=True`` while
  training, so the loss trains through the field.

Deviations: initialization draws from the run context's torch generator (the official
code uses the global one); the official ``rk4_time_derivative`` training option is not
provided (the official scripts call it without its ``dt`` argument, so it cannot run);
rollouts evaluate the field without ``create_graph`` (same numbers, no graph kept).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from harness import Model, Params, RunContext

from .datasets import DynamicsData

Nonlinearity = Literal["tanh", "relu", "sigmoid", "softplus", "selu", "elu", "swish"]
FieldType = Literal["solenoidal", "conservative", "both", "zero"]

_NONLINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
    "softplus": nn.functional.softplus, "selu": nn.functional.selu, "elu": nn.functional.elu,
    "swish": lambda x: x * torch.sigmoid(x),
}


class MLP(nn.Module):
    """The official three-layer MLP (no bias on the output layer, orthogonal weights)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int,
                 nonlinearity: str = "tanh", generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.linear1 = nn.Linear(input_dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, hidden_dim)
        self.linear3 = nn.Linear(hidden_dim, output_dim, bias=False)
        with torch.no_grad():
            for layer in (self.linear1, self.linear2, self.linear3):
                if layer.bias is not None:
                    bound = 1 / math.sqrt(layer.in_features)
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
                nn.init.orthogonal_(layer.weight, generator=generator)
        self.nonlinearity = _NONLINEARITIES[nonlinearity]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.nonlinearity(self.linear1(x))
        h = self.nonlinearity(self.linear2(h))
        return self.linear3(h)


def symplectic_matrix(n: int, canonical: bool = True) -> torch.Tensor:
    """The official permutation tensor ``M`` (the field is ``dH/dx @ M^T``).

    Canonical coordinates: ``M = [[0, I], [-I, 0]]`` (rows ``n/2..n`` of the identity on
    top of minus rows ``0..n/2``). Otherwise the official Levi-Civita-like pattern.
    """
    if canonical:
        eye = torch.eye(n)
        return torch.cat([eye[n // 2:], -eye[: n // 2]])
    m = torch.ones(n, n) * (1 - torch.eye(n))
    m[::2] *= -1
    m[:, ::2] *= -1
    for i in range(n):
        for j in range(i + 1, n):
            m[i, j] *= -1
    return m


def symplectic_gradient(h: torch.Tensor, x: torch.Tensor, matrix: torch.Tensor,
                        create_graph: bool = True) -> torch.Tensor:
    """``dH/dx @ matrix^T`` for a batch: ``h`` is ``(batch,)`` or ``(batch, 1)`` from ``x``."""
    (grad,) = torch.autograd.grad(h.sum(), x, create_graph=create_graph, retain_graph=True)
    return grad @ matrix.t().to(grad.dtype)


class DynamicsModel(nn.Module):
    """A learned vector field: the baseline MLP, or an HNN's symplectic gradient."""

    def __init__(self, net: MLP, input_dim: int, baseline: bool,
                 field_type: str = "solenoidal", canonical: bool = True) -> None:
        super().__init__()
        self.net = net
        self.baseline = baseline
        self.field_type = field_type
        self.frozen = False  # the `untrained` ablation: hnn/train takes no step
        self.register_buffer("M", symplectic_matrix(input_dim, canonical))

    @property
    def matrix(self) -> torch.Tensor:
        """The permutation tensor ``M`` of the field ``dH/dx @ M^T``."""
        m = self.M
        assert isinstance(m, torch.Tensor)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def time_derivative(self, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
        if self.baseline:
            out = self.net(x)
            return out if create_graph else out.detach()
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            if self.field_type == "zero":  # ablation: a frozen state, nothing learned
                zero = x * 0.0  # on the input's graph only: the loss backpropagates, no
                return zero if create_graph else zero.detach()  # parameter gets a gradient
            out = self.net(x)
            field = torch.zeros_like(x)
            if self.field_type != "solenoidal":  # official: dF1 @ eye
                eye = torch.eye(x.shape[1], dtype=x.dtype)
                field = field + symplectic_gradient(out[:, 0], x, eye, create_graph)
            if self.field_type != "conservative":  # official: dF2 @ M^T
                field = field + symplectic_gradient(out[:, 1], x, self.matrix, create_graph)
        return field if create_graph else field.detach()

    def learned_hamiltonian(self, x: torch.Tensor) -> torch.Tensor | None:
        """The scalar whose symplectic gradient is the field (F2), or None for a baseline."""
        if self.baseline or self.field_type == "conservative":
            return None
        with torch.no_grad():
            return self.net(x)[:, 1]


class _ModelParams(Params):
    hidden: int = Field(200, ge=1, description="hidden width (official hidden_dim)")
    nonlinearity: Nonlinearity = "tanh"


class BaselineMLP(Model):
    """Baseline: the official MLP predicts (dq/dt, dp/dt) directly."""

    name = "hnn/mlp"
    Params = _ModelParams

    def build(self, ctx: RunContext, data: DynamicsData) -> DynamicsModel:
        p: _ModelParams = self.params  # type: ignore[assignment]
        net = MLP(data.dim, p.hidden, data.dim, p.nonlinearity, ctx.generator)
        return DynamicsModel(net, data.dim, baseline=True)


class HNN(Model):
    """Hamiltonian Neural Network: the field is the symplectic gradient of a learned H."""

    name = "hnn/hnn"

    class Params(_ModelParams):
        field_type: FieldType = Field(
            "solenoidal", description="solenoidal: dF2/dx @ M^T, the HNN (paper); "
            "conservative: dF1/dx @ I, a plain gradient field (ablation: the identity in place "
            "of the symplectic matrix); both: their sum; zero: ablation, an identically zero "
            "field (0 * x; output layer zeroed), i.e. a frozen state")
        untrained: bool = Field(False, description="ablation (a control, not in the official "
                                "code): hnn/train takes no step, so the HNN is evaluated at "
                                "its random initialization")
        canonical_coords: bool = Field(True, description="M = [[0, I], [-I, 0]]; false: the "
                                       "official Levi-Civita-like pattern")

    def build(self, ctx: RunContext, data: DynamicsData) -> DynamicsModel:
        p: HNN.Params = self.params  # type: ignore[assignment]
        net = MLP(data.dim, p.hidden, 2, p.nonlinearity, ctx.generator)
        if p.field_type == "zero":
            with torch.no_grad():
                net.linear3.weight.zero_()
        model = DynamicsModel(net, data.dim, baseline=False, field_type=p.field_type,
                              canonical=p.canonical_coords)
        model.frozen = p.untrained
        return model


MODELS: list[type[Model]] = [BaselineMLP, HNN]
