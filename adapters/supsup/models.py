"""SupSup models: bias-free MLP / small CNN built from masked layers, and a dense baseline
(Supermasks in Superposition, Wortsman et al., arXiv 2006.14769).

The official FC model for permuted MNIST (``models/small.py``, ``FC1024``) is
784-1024-1024-``output_size`` with ReLUs and no biases; the GNu configs set
``output_size`` to 500 (FC) or 100 (LeNet) while only 10 outputs are real classes: the
superfluous outputs are what the "G" task-inference objective reads. ``outputs`` sets that
size here (default: the number of classes).

Deviations: the input is 64 pixels (digits) and the hidden widths are params (default
256-256 instead of 1024-1024); the CNN is a small stand-in for the official LeNet/ResNet
models (masked 3x3 convs, max-pool, masked linear head), not one of them.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from harness import HarnessError, Model, Params, RunContext

from .data import TaskSequence
from .masks import MaskRule, MultitaskMaskConv2d, MultitaskMaskLinear


class SupSupNet(nn.Module):
    """A network of masked layers; ``num_classes`` of its ``outputs`` are real classes."""

    def __init__(self, body: nn.Sequential, num_tasks: int, num_classes: int,
                 outputs: int, flatten: bool) -> None:
        super().__init__()
        self.body = body
        self.num_tasks = num_tasks
        self.num_classes = num_classes
        self.outputs = outputs
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1) if self.flatten else x)


class MaskedParams(Params):
    outputs: int | None = Field(
        None, ge=1, description="output neurons in all (>= classes; the extra ones are "
        "superfluous; official GNu: 500 for FC, 100 for LeNet). Default: the classes")
    mask: Literal["topk", "threshold"] = Field(
        "topk", description="topk: keep the largest |scores| (GG); threshold: scores >= 0 (GNu)")
    sparsity: float = Field(0.5, gt=0, le=1, description="topk only: fraction of weights KEPT "
                            "(the official code's name and meaning)")
    tasks: int | None = Field(None, ge=1, description="score tensors; default: the data's tasks")


def _check(data: Any, name: str) -> TaskSequence:
    if not isinstance(data, TaskSequence):
        raise HarnessError(f"{name} needs a task sequence, got {type(data).__name__}",
                           hint="use supsup/permuted-digits, supsup/rotated-digits or "
                           "supsup/split-digits as the dataset")
    return data


def _sizes(p: MaskedParams, data: TaskSequence) -> tuple[int, int]:
    outputs = p.outputs or data.num_classes
    if outputs < data.num_classes:
        raise HarnessError(f"outputs={outputs} is fewer than the {data.num_classes} classes",
                           hint=f"set outputs >= {data.num_classes}")
    tasks = p.tasks or data.num_tasks
    if tasks < data.num_tasks:
        raise HarnessError(f"tasks={tasks} is fewer than the data's {data.num_tasks} tasks")
    return outputs, tasks


class MaskedMLP(Model):
    """Bias-free MLP of fixed signed-constant weights with one supermask per task."""

    name = "supsup/masked-mlp"

    class Params(MaskedParams):
        hidden: list[int] = Field(default_factory=lambda: [256, 256],
                                  description="hidden widths")

    def build(self, ctx: RunContext, data: Any) -> SupSupNet:
        data = _check(data, self.name)
        p: MaskedMLP.Params = self.params  # type: ignore[assignment]
        outputs, tasks = _sizes(p, data)
        rule: MaskRule = p.mask
        layers: list[nn.Module] = []
        width = data.num_features
        for h in [*p.hidden, outputs]:
            layers.append(MultitaskMaskLinear(width, h, tasks, rule, p.sparsity, ctx.generator))
            layers.append(nn.ReLU())
            width = h
        return SupSupNet(nn.Sequential(*layers[:-1]), tasks, data.num_classes, outputs, True)


class MaskedCNN(Model):
    """Small bias-free CNN for 8x8 digits: masked 3x3 convs, max-pool, masked linear head."""

    name = "supsup/masked-cnn"

    class Params(MaskedParams):
        channels: list[int] = Field(default_factory=lambda: [16, 32])
        hidden: int = Field(128, ge=1)

        @model_validator(mode="after")
        def _some(self) -> MaskedCNN.Params:
            if not self.channels:
                raise ValueError("give at least one conv channel count")
            return self

    def build(self, ctx: RunContext, data: Any) -> SupSupNet:
        data = _check(data, self.name)
        p: MaskedCNN.Params = self.params  # type: ignore[assignment]
        outputs, tasks = _sizes(p, data)
        c, h, w = data.image_shape
        layers: list[nn.Module] = [nn.Unflatten(1, (c, h, w))]
        for ch in p.channels:
            layers += [MultitaskMaskConv2d(c, ch, 3, tasks, p.mask, p.sparsity, ctx.generator,
                                           padding=1), nn.ReLU()]
            c = ch
        layers += [nn.MaxPool2d(2), nn.Flatten(),
                   MultitaskMaskLinear(c * (h // 2) * (w // 2), p.hidden, tasks, p.mask,
                                       p.sparsity, ctx.generator), nn.ReLU(),
                   MultitaskMaskLinear(p.hidden, outputs, tasks, p.mask, p.sparsity,
                                       ctx.generator)]
        return SupSupNet(nn.Sequential(*layers), tasks, data.num_classes, outputs, True)


class DenseMLP(Model):
    """Ordinary MLP (PyTorch default init, biases) for the fine-tuning baseline."""

    name = "supsup/dense-mlp"

    class Params(Params):
        hidden: list[int] = Field(default_factory=lambda: [256, 256])
        outputs: int | None = Field(None, ge=1, description="default: the classes")
        bias: bool = True

    def build(self, ctx: RunContext, data: Any) -> nn.Module:
        data = _check(data, self.name)
        p: DenseMLP.Params = self.params  # type: ignore[assignment]
        layers: list[nn.Module] = [nn.Flatten()]
        width = data.num_features
        for h in p.hidden:
            layers += [nn.Linear(width, h, bias=p.bias), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, max(p.outputs or 0, data.num_classes), bias=p.bias))
        model = nn.Sequential(*layers)
        for m in model.modules():  # PyTorch's default init, drawn from the context
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=ctx.generator)
                if m.bias is not None:
                    bound = 1 / math.sqrt(m.in_features)
                    nn.init.uniform_(m.bias, -bound, bound, generator=ctx.generator)
        return model


MODELS: list[type[Model]] = [MaskedMLP, MaskedCNN, DenseMLP]
