"""Small torch models: an MLP and a CNN for 8x8 images, initialized from the run context."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from harness import Model, Params, RunContext
from harness.data import ClassificationData

if TYPE_CHECKING:
    import torch
    from torch import nn


def activation(name: str) -> type[nn.Module]:
    """The torch activation module class named ``name`` (relu, tanh, sigmoid, gelu)."""
    from torch import nn
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[name]


def init_like_torch(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """PyTorch's default Linear/Conv initialization, drawn from ``generator``."""
    from torch import nn
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
    return module


class MLP(Model):
    """A multilayer perceptron: input -> hidden layers -> one logit per class."""

    name = "torch/mlp"

    class Params(Params):
        hidden: list[int] = Field(default_factory=lambda: [100], description="hidden widths")
        activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"
        bias: bool = True

    def build(self, ctx: RunContext, data: ClassificationData) -> nn.Module:
        from torch import nn
        p = self.params
        layers: list[nn.Module] = [nn.Flatten()]
        width = data.num_features
        for h in p.hidden:
            layers += [nn.Linear(width, h, bias=p.bias), activation(p.activation)()]
            width = h
        layers.append(nn.Linear(width, data.num_classes, bias=p.bias))
        return init_like_torch(nn.Sequential(*layers), ctx.generator)


class CNN(Model):
    """A small conv net for 8x8 single-channel images (scikit-learn digits)."""

    name = "torch/cnn"

    class Params(Params):
        channels: list[int] = Field(default_factory=lambda: [16, 32])
        hidden: int = 64
        activation: Literal["relu", "tanh", "sigmoid", "gelu"] = "relu"

    def build(self, ctx: RunContext, data: ClassificationData) -> nn.Module:
        from torch import nn
        p = self.params
        shape = data.image_shape
        if shape is None or len(shape) != 3:
            from harness.errors import HarnessError
            raise HarnessError(f"torch/cnn needs image data; dataset {data.name!r} has flat "
                               "features", hint="use torch/mlp for tabular datasets")
        act = activation(p.activation)
        layers: list[nn.Module] = [nn.Unflatten(1, shape)] if data.x_train.dim() == 2 else []
        c_in = shape[0]
        for c in p.channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), act()]
            c_in = c
        layers += [nn.MaxPool2d(2), nn.Flatten()]
        flat = c_in * (shape[1] // 2) * (shape[2] // 2)
        layers += [nn.Linear(flat, p.hidden), act(), nn.Linear(p.hidden, data.num_classes)]
        return init_like_torch(nn.Sequential(*layers), ctx.generator)


MODELS: list[type[Model]] = [MLP, CNN]
