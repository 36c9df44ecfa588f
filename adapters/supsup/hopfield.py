"""HopSupSup's memory and model: supermasks kept as attractors of a fixed-size Hopfield net.

Supermasks in Superposition (Wortsman et al., arXiv 2006.14769), the extension that stores
the growing set of supermasks "in a constant-sized reservoir by implicitly storing them as
attractors in a fixed-sized Hopfield network". Written from a reading of the official
``models/modules.py`` (``FastHopMaskBN``), ``models/small.py`` (``BNNet``) and
``experiments/GNu/SplitMNIST/hopsupsup.py`` (RAIVNLab/supsup):

- the masks are over **units**, not weights: the model is a bias-free MLP of fixed
  signed-constant weights whose hidden layers are each followed by a non-affine BatchNorm
  that always normalizes with the batch's statistics and whose per-unit *scale* is the
  task's binary mask (``scores >= 0``, straight-through gradient), then Swish; scores
  start at 0 (every unit on);
- after a task, its mask ``m`` becomes the pattern ``x = 2m - 1`` in ``{-1, +1}^d`` and is
  written into the layer's ``d x d`` Hopfield weights with the Storkey rule
  ``W += (x x^T - I - x h^T - h x^T) / d``, ``h = W x`` (the official code uses the full
  local field ``W x``; Storkey's own rule leaves out the diagonal terms);
- the Hopfield energy of a state ``s`` is ``-s^T W s / 2``; ``hopfield_recovery``
  (``hopsupsup.py`` here) descends it by gradient, together with the output entropy.

What is fixed-size: ``W`` (``d^2`` floats per masked layer) and the running sum of the
stored patterns (``d`` floats and a count), from which the recovery starts (the official
start is the mean of the stored patterns). Neither grows with the number of tasks.

Deviations: the official ``cache_masks`` rebuilds ``W`` from every task's kept score
tensor before inference, so the official run keeps the per-task scores as well; here a
pattern is written into ``W`` once, when its task is trained, and recovery reads only the
memory (the per-task scores stay on the model for the stored-mask (GG) comparison only).
``memory: patterns`` is that official bookkeeping (patterns kept and ``W`` rebuilt), an
ABLATION whose memory grows with the tasks. Hidden width default 256 instead of 2048
(digits have 64 pixels, MNIST 784).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from harness import HarnessError, Model, Params, RunContext

from .data import TaskSequence
from .masks import get_subnet, signed_constant_

Rule = Literal["storkey", "hebbian"]
MemoryKind = Literal["hopfield", "empty", "patterns"]


class HopfieldMemory:
    """A ``d``-unit Hopfield network storing +-1 patterns: fixed size, any number stored.

    ``kind``: ``hopfield`` (the method), ``empty`` (ABLATION: stores nothing, ``W`` stays
    0 and the start is the untrained mask) or ``patterns`` (ABLATION: also keeps every
    pattern, as the official bookkeeping does: memory grows with the tasks).
    """

    def __init__(self, d: int, rule: Rule = "storkey", kind: MemoryKind = "hopfield") -> None:
        self.d, self.rule, self.kind = d, rule, kind
        self.W = torch.zeros(d, d)
        self.pattern_sum = torch.zeros(d)
        self.count = 0
        self.patterns: list[torch.Tensor] = []

    def store(self, x: torch.Tensor) -> None:
        """Write the pattern ``x`` (``d`` values in {-1, +1}) into the weights."""
        if x.shape != (self.d,) or not bool(((x == 1) | (x == -1)).all()):
            raise ValueError(f"a pattern is {self.d} values in {{-1, +1}}")
        if self.kind == "empty":
            return
        x = x.to(self.W.dtype)
        self.W = self.W + self._increment(self.W, x)
        self.pattern_sum = self.pattern_sum + x
        self.count += 1
        if self.kind == "patterns":
            self.patterns.append(x.clone())

    def _increment(self, W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        heb = torch.outer(x, x) - torch.eye(self.d, dtype=W.dtype)
        if self.rule == "hebbian":
            return heb / self.d
        h = W @ x
        pre = torch.outer(x, h)
        return (heb - pre - pre.T) / self.d

    def weights(self) -> torch.Tensor:
        """The Hopfield weights (with ``patterns``, rebuilt from the kept patterns)."""
        if self.kind != "patterns":
            return self.W
        W = torch.zeros(self.d, self.d)
        for x in self.patterns:
            W = W + self._increment(W, x)
        return W

    def start(self) -> torch.Tensor:
        """Where recovery starts: the mean of the stored patterns (0, every unit on, when
        nothing is stored)."""
        if self.count == 0:
            return torch.zeros(self.d)
        return self.pattern_sum / self.count

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        """``-s^T W s / 2`` (differentiable in ``s``)."""
        return -0.5 * s @ (self.weights() @ s)

    def update(self, s: torch.Tensor, sweeps: int = 20) -> torch.Tensor:
        """Synchronous sign updates ``s <- sign(W s)`` (ties keep their sign) until a fixed
        point or ``sweeps`` updates: the textbook recall, used by the tests."""
        W = self.weights()
        for _ in range(sweeps):
            h = W @ s
            new = torch.where(h == 0, s, h.sign())
            if torch.equal(new, s):
                break
            s = new
        return s

    def state_floats(self) -> int:
        """Numbers held by the memory: ``W``, the pattern sum and its count, and, with
        ``patterns``, every kept pattern."""
        return (self.W.numel() + self.pattern_sum.numel() + 1
                + sum(x.numel() for x in self.patterns))


def pattern(mask: torch.Tensor) -> torch.Tensor:
    """A binary mask as a Hopfield pattern, ``2 m - 1``."""
    return 2 * mask - 1


class HopMaskBN(nn.Module):
    """Non-affine BatchNorm over ``d`` units (batch statistics always) whose per-unit scale
    is a binary mask: task ``t``'s (``scores[t] >= 0``) or, with ``task < 0``, the mask
    being recovered (``score``). Official ``FastHopMaskBN``."""

    def __init__(self, d: int, num_tasks: int, rule: Rule, kind: MemoryKind,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.d, self.eps = d, eps
        self.scores = nn.ParameterList([nn.Parameter(torch.zeros(d)) for _ in range(num_tasks)])
        self.score = nn.Parameter(torch.zeros(d), requires_grad=False)
        self.memory = HopfieldMemory(d, rule, kind)
        self.task = 0

    def subnet(self) -> torch.Tensor:
        scores = self.score if self.task < 0 else self.scores[self.task]
        return get_subnet(scores, "threshold", 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, None, None, self.subnet(), None, True, 0.0, self.eps)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class HopNet(nn.Module):
    """Fixed random linear layers, each hidden one followed by a mask-scaled BatchNorm."""

    def __init__(self, body: nn.Sequential, num_tasks: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.num_tasks = num_tasks
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


def hop_layers(model: nn.Module) -> list[HopMaskBN]:
    return [m for m in model.modules() if isinstance(m, HopMaskBN)]


def set_hop_task(model: nn.Module, task: int) -> None:
    for layer in hop_layers(model):
        layer.task = task


class HopMLP(Model):
    """BNNet at digits scale: 64 -> hidden (fixed signed-constant weights, no bias),
    mask-scaled non-affine BatchNorm, Swish, ..., -> classes (fixed)."""

    name = "supsup/hop-mlp"

    class Params(Params):
        hidden: list[int] = Field(default_factory=lambda: [256, 256], min_length=1,
                                  description="hidden widths (official BNNet: 2048, 2048)")
        rule: Rule = Field("storkey", description="Hopfield learning rule (official: "
                           "storkey; hebbian is the plain outer-product rule)")
        memory: MemoryKind = Field(
            "hopfield", description="hopfield (the method); ABLATIONS: empty (stores "
            "nothing) and patterns (also keeps every pattern: memory grows with tasks)")
        tasks: int | None = Field(None, ge=1, description="score tensors; default: the "
                                  "data's tasks")

    def build(self, ctx: RunContext, data: Any) -> HopNet:
        if not isinstance(data, TaskSequence):
            raise HarnessError(f"{self.name} needs a task sequence",
                               hint="use supsup/split-digits (the official SplitMNIST) or "
                               "supsup/permuted-digits")
        p: HopMLP.Params = self.params  # type: ignore[assignment]
        tasks = p.tasks or data.num_tasks
        if tasks < data.num_tasks:
            raise HarnessError(f"tasks={tasks} is fewer than the data's {data.num_tasks}")
        def fixed_linear(fan_in: int, fan_out: int) -> nn.Linear:
            lin = nn.Linear(fan_in, fan_out, bias=False)
            nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5), generator=ctx.generator)
            signed_constant_(lin.weight)
            lin.weight.requires_grad_(False)
            return lin

        layers: list[nn.Module] = []
        width = data.num_features
        for h in p.hidden:
            layers += [fixed_linear(width, h), HopMaskBN(h, tasks, p.rule, p.memory), Swish()]
            width = h
        layers.append(fixed_linear(width, data.num_classes))
        return HopNet(nn.Sequential(*layers), tasks, data.num_classes)


MODELS: list[type[Model]] = [HopMLP]
