"""Masked layers of Supermasks in Superposition (Wortsman et al., arXiv 2006.14769).

A masked layer holds fixed random weights and one real-valued score tensor per task. Its
effective weight is ``weight * mask(scores[task])``; only the scores are ever trained.

Details that follow the official code (RAIVNLab/supsup, ``models/module_util.py``,
``models/modules.py``, ``models/init.py``, ``mnist.ipynb``):

- weights: the layer's default PyTorch initialization (Kaiming uniform, a=sqrt(5)) is drawn
  first and only its *sign* is kept, scaled to ``gain / sqrt(fan_in)`` with the ReLU gain
  sqrt(2) ("signed constant"); every masked layer, the last one included, gets it;
- no biases anywhere;
- scores: one tensor per task of the weight's shape, Kaiming uniform with a=sqrt(5) (uniform
  on +-1/sqrt(fan_in)), drawn when the layer is built (before the weights' signs are fixed);
- two mask rules: ``topk`` (``GetSubnet`` on ``|scores|``: sort, the ``int((1 - k) * n)``
  smallest become 0 and the rest 1, where ``k`` is the kept fraction the official code calls
  ``sparsity``; used by ``MultitaskMaskConv`` for scenario GG) and ``threshold``
  (``scores >= 0``; ``FastMultitaskMaskConv``, the GNu/NNs experiments and the notebook);
  both pass the gradient straight through (the identity), so the top-k rule's gradient
  reaches the scores through ``abs``;
- a negative ``task`` switches the layer to the superposition ``sum_i alpha_i M_i`` over the
  masks of the tasks learned so far, from a cache of the stacked binary masks.

Deviation: the official top-k sorts every score tensor at every step. Here the k-th
smallest magnitude is found with ``kthvalue`` and the mask is ``|s| > v``; when that does not
leave exactly ``int((1 - k) * n)`` zeros (ties at the boundary), the sort-based rule is used,
so the mask is always the official one (the order among exactly tied scores is
implementation-defined in both). The superposition is computed as one matrix product
``alphas @ stacked`` over all learned tasks instead of a sum over the tasks with
``alpha > 0``: the mask is the same, and the gradients of tasks with ``alpha = 0`` (which the
official code leaves at zero) are never used by the inference algorithms.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MaskRule = Literal["topk", "threshold"]


def topk_mask(magnitudes: torch.Tensor, keep: float) -> torch.Tensor:
    """The official ``GetSubnet`` forward: 0 for the ``int((1-keep)*n)`` smallest, 1 else."""
    flat = magnitudes.detach().flatten()
    n = flat.numel()
    j = int((1 - keep) * n)
    if j <= 0:
        return torch.ones_like(magnitudes)
    if j >= n:
        return torch.zeros_like(magnitudes)
    kth = flat.kthvalue(j).values
    mask = (flat > kth).to(magnitudes.dtype)
    if int(n - mask.sum().item()) != j:  # ties at the boundary: the exact sort-based rule
        idx = flat.sort().indices
        mask = torch.zeros_like(flat).index_fill_(0, idx[j:], 1.0)
    return mask.view_as(magnitudes)


def threshold_mask(scores: torch.Tensor) -> torch.Tensor:
    """The official ``GetSubnetFast`` forward: an edge is kept when its score is >= 0."""
    return (scores.detach() >= 0).to(scores.dtype)


class _TopK(torch.autograd.Function):
    """``GetSubnet``: forward the top-k mask of the magnitudes, backward the identity."""

    @staticmethod
    def forward(ctx: object, magnitudes: torch.Tensor, keep: float) -> torch.Tensor:
        return topk_mask(magnitudes, keep)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class _Threshold(torch.autograd.Function):
    """``GetSubnetFast``: forward ``scores >= 0``, backward the identity."""

    @staticmethod
    def forward(ctx: object, scores: torch.Tensor) -> torch.Tensor:
        return threshold_mask(scores)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad


def get_subnet(scores: torch.Tensor, rule: MaskRule, keep: float) -> torch.Tensor:
    """The binary mask of ``scores`` under ``rule``, with a straight-through gradient."""
    if rule == "topk":
        return _TopK.apply(scores.abs(), keep)
    return _Threshold.apply(scores)


def signed_constant_(weight: torch.Tensor) -> None:
    """Keep the sign of ``weight`` and set its magnitude to ``sqrt(2) / sqrt(fan_in)``."""
    fan_in = nn.init._calculate_correct_fan(weight, "fan_in")
    std = nn.init.calculate_gain("relu") / math.sqrt(fan_in)
    with torch.no_grad():
        weight.copy_(weight.sign() * std)


def score_init(shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """The official ``mask_init``: Kaiming uniform with a=sqrt(5) over a weight-shaped tensor."""
    scores = torch.empty(shape)
    nn.init.kaiming_uniform_(scores, a=math.sqrt(5), generator=generator)
    return scores


class MaskedLayer(nn.Module):
    """Shared state of the masked layers: scores per task, task index, superposition."""

    weight: torch.Tensor
    scores: nn.ParameterList

    def _setup(self, num_tasks: int, rule: MaskRule, keep: float,
               generator: torch.Generator) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        self.scores = nn.ParameterList(
            [nn.Parameter(score_init(self.weight.shape, generator)) for _ in range(num_tasks)])
        signed_constant_(self.weight)
        self.weight.requires_grad_(False)
        self.rule: MaskRule = rule
        self.keep = keep
        self.task = 0
        self.num_tasks_learned = 0
        self.alphas: torch.Tensor | None = None
        self.stacked: torch.Tensor | None = None
        self.superposed: torch.Tensor | None = None  # a fixed superposed mask (batched GN)
        self.shared = False  # ABLATION (share_scores): every task reads scores[0]

    def score_index(self, task: int) -> int:
        return 0 if self.shared else task

    def mask(self, task: int) -> torch.Tensor:
        """Task ``task``'s binary mask (no gradient)."""
        with torch.no_grad():
            return get_subnet(self.scores[self.score_index(task)], self.rule, self.keep)

    def cache_masks(self, num_tasks: int) -> None:
        """Stack the masks of tasks ``0..num_tasks-1`` as rows (for superposition and fast
        evaluation; training must run without the cache: ``clear_masks``)."""
        self.stacked = torch.stack([self.mask(t).flatten() for t in range(num_tasks)])

    def clear_masks(self) -> None:
        self.stacked = None

    def subnet(self) -> torch.Tensor:
        if self.task >= 0:
            if self.stacked is not None and self.task < self.stacked.shape[0]:
                return self.stacked[self.task].view_as(self.weight)  # evaluation: cached
            return get_subnet(self.scores[self.score_index(self.task)], self.rule, self.keep)
        if self.superposed is not None:
            return self.superposed
        if self.alphas is None or self.stacked is None:
            raise RuntimeError("superposition needs set_alphas() and cache_masks() first")
        learned = self.num_tasks_learned
        alphas = self.alphas[:learned].reshape(1, learned)
        return (alphas @ self.stacked[:learned]).view_as(self.weight)


class MultitaskMaskLinear(MaskedLayer, nn.Linear):
    """A bias-free linear layer with fixed signed-constant weights and a mask per task."""

    def __init__(self, in_features: int, out_features: int, num_tasks: int, rule: MaskRule,
                 keep: float, generator: torch.Generator) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias=False)
        self._setup(num_tasks, rule, keep, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.subnet())


class MultitaskMaskConv2d(MaskedLayer, nn.Conv2d):
    """A bias-free 2-d convolution with fixed signed-constant weights and a mask per task."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_tasks: int,
                 rule: MaskRule, keep: float, generator: torch.Generator,
                 padding: int = 0) -> None:
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding,
                           bias=False)
        self._setup(num_tasks, rule, keep, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.subnet(), None)


def masked_layers(model: nn.Module) -> Iterator[MaskedLayer]:
    for module in model.modules():
        if isinstance(module, MaskedLayer):
            yield module


def set_task(model: nn.Module, task: int) -> None:
    """Use task ``task``'s mask; a negative task switches to the superposition."""
    for layer in masked_layers(model):
        layer.task = task


def set_alphas(model: nn.Module, alphas: torch.Tensor | None) -> None:
    for layer in masked_layers(model):
        layer.alphas = alphas


def set_num_tasks_learned(model: nn.Module, learned: int) -> None:
    for layer in masked_layers(model):
        layer.num_tasks_learned = learned


def cache_masks(model: nn.Module, num_tasks: int) -> None:
    for layer in masked_layers(model):
        layer.cache_masks(num_tasks)


def clear_masks(model: nn.Module) -> None:
    for layer in masked_layers(model):
        layer.clear_masks()


def task_scores(model: nn.Module, task: int) -> list[nn.Parameter]:
    """The score tensors of one task, one per masked layer: what that task trains."""
    return [layer.scores[layer.score_index(task)] for layer in masked_layers(model)]


def share_scores(model: nn.Module) -> None:
    """ABLATION: every task reads and trains the first task's score tensor (one mask for
    all tasks, so later tasks overwrite earlier ones: what SupSup's per-task masks avoid)."""
    for layer in masked_layers(model):
        layer.shared = True


def fixed_weights(model: nn.Module) -> list[torch.Tensor]:
    """The masked layers' weights (fixed in SupSup; trained only by the ablation)."""
    return [layer.weight for layer in masked_layers(model)]


def is_masked(model: object) -> bool:
    return isinstance(model, nn.Module) and any(True for _ in masked_layers(model))
