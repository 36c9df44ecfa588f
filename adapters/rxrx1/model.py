"""``rxrx1/cnn``: a small conv net for 6-channel cell images with an embedding head.

An input batch norm (per channel, no affine; ``input_norm``), three 3x3 conv blocks
(conv, batch norm, ReLU; 2x2 max-pool after the first two), global average pooling to
an embedding, and a linear head. ``embed(x)`` is the embedding that TVN, the CORAL
penalty and the batch probe use; batch norm is what AdaBN re-estimates per experiment.
A stand-in for the paper's DenseNet/ResNet at CPU scale.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from harness import Model, Params, RunContext
from harness.data import ClassificationData
from harness.errors import HarnessError

from ..generic.models import init_like_torch


class CellCNN(nn.Module):
    def __init__(self, in_channels: int, channels: list[int], num_classes: int,
                 norm: str = "batch", input_norm: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if input_norm and norm == "batch":
            layers.append(nn.BatchNorm2d(in_channels, affine=False))
        c_in = in_channels
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=norm != "batch")]
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.ReLU())
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CellCNNModel(Model):
    """A small CNN for 6-channel cell images, with ``embed`` and batch norm (for AdaBN)."""

    name = "rxrx1/cnn"
    version = "1"

    class Params(Params):
        channels: list[int] = Field(default_factory=lambda: [16, 32, 64],
                                    description="widths of the conv blocks")
        norm: Literal["batch", "none"] = Field("batch", description="batch norm after convs")
        input_norm: bool = Field(True, description="a batch norm (no affine) on the input "
                                 "channels, before the first conv")

    def build(self, ctx: RunContext, data: ClassificationData) -> nn.Module:
        shape = data.image_shape
        if shape is None or len(shape) != 3:
            raise HarnessError(f"rxrx1/cnn needs images (channels, height, width); dataset "
                               f"{data.name!r} has shape {shape}",
                               hint="use rxrx1/synthetic or rxrx1/images")
        net = CellCNN(shape[0], list(self.params.channels), data.num_classes, self.params.norm,
                       self.params.input_norm)
        return init_like_torch(net, ctx.generator)
