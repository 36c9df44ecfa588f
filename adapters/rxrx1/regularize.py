"""Corrections inside the training loss; neither is transductive.

- ``rxrx1/gain-bias-augment``: kaggle-rcic-1st's ``--pw-aug``: each training image's
  channels are multiplied by ``a ~ N(1, gain_std)`` and shifted by ``b ~ N(0, bias_std)``
  (defaults 0.1, 0.1 as there), after the input standardization of ``base``.
- ``rxrx1/coral``: WILDS' Deep CORAL penalty: for every pair of experiments in a
  minibatch, the squared differences of the embeddings' means and covariances (each
  averaged over entries), averaged over pairs, times ``weight`` (WILDS' RxRx1 config: 0.1),
  added to the cross-entropy. Deviation: WILDS draws group-balanced minibatches (9
  experiments each); here minibatches are the trainer's uniform draws.

Both take an optional ``base`` correction for inputs and evaluation (e.g. ``rxrx1/global``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from harness import Component, Params, RunContext, component_field
from harness.errors import HarnessError

from .screen import groups_of
from .standardize import ScreenCorrection


class _BaseParams(Params):
    base: Component | None = component_field("correction", None,
                                             "input correction applied first, e.g. rxrx1/global")


class _WithBase(ScreenCorrection):
    def prepare(self, ctx: RunContext, data: Any) -> Any:
        self.inner = self.params.base.build() if self.params.base is not None else None
        if self.inner is not None:
            data = self.inner.prepare(ctx.derive("base"), data)
        self.data = data
        return data

    def finish(self, ctx: RunContext, model: torch.nn.Module, data: Any) -> None:
        if self.inner is not None:
            self.inner.finish(ctx, model, data)

    def predict(self, model: torch.nn.Module, x: torch.Tensor, split: str,
                chunk: int = 4096) -> torch.Tensor:
        if self.inner is not None:
            return self.inner.predict(model, x, split, chunk)
        return super().predict(model, x, split, chunk)

    def embed(self, model: torch.nn.Module, x: torch.Tensor, split: str,
              chunk: int = 2048) -> torch.Tensor:
        if self.inner is not None and hasattr(self.inner, "embed"):
            return self.inner.embed(model, x, split, chunk)
        return super().embed(model, x, split, chunk)


class GainBiasParams(_BaseParams):
    gain_std: float = Field(0.1, ge=0, description="std of the per-channel gain a ~ N(1, .)")
    bias_std: float = Field(0.1, ge=0, description="std of the per-channel bias b ~ N(0, .)")


class GainBiasAugment(_WithBase):
    """Per-channel random gain and bias on every training image (kaggle --pw-aug)."""

    name = "rxrx1/gain-bias-augment"
    Params = GainBiasParams

    def prepare(self, ctx: RunContext, data: Any) -> Any:
        self.gen = ctx.derive("pw-aug").generator
        return super().prepare(ctx, data)

    def train_loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   batch: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        a = 1 + self.params.gain_std * torch.randn(n, c, 1, 1, generator=self.gen)
        b = self.params.bias_std * torch.randn(n, c, 1, 1, generator=self.gen)
        return F.cross_entropy(model(x * a + b), y)


def coral_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of means plus of covariances (DomainBed/WILDS form)."""
    ma, mb = a.mean(0, keepdim=True), b.mean(0, keepdim=True)
    ca, cb = a - ma, b - mb
    cov_a = ca.T @ ca / (len(a) - 1)
    cov_b = cb.T @ cb / (len(b) - 1)
    return (ma - mb).pow(2).mean() + (cov_a - cov_b).pow(2).mean()


class CoralParams(_BaseParams):
    weight: float = Field(0.1, ge=0, description="penalty weight (WILDS: 0.1 for RxRx1)")


class CoralPenalty(_WithBase):
    """Deep CORAL penalty between experiments' embeddings in each minibatch (WILDS)."""

    name = "rxrx1/coral"
    Params = CoralParams

    def train_loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   batch: torch.Tensor) -> torch.Tensor:
        if not (hasattr(model, "embed") and hasattr(model, "head")):
            raise HarnessError("rxrx1/coral needs a model with embed(x) and head",
                               hint="use rxrx1/cnn")
        emb = model.embed(x)
        loss = F.cross_entropy(model.head(emb), y)
        exp = groups_of(self.data, "train")["experiment"][batch]
        groups = [emb[exp == g] for g in sorted(set(exp.tolist()))]
        groups = [g for g in groups if len(g) > 1]
        pairs = [(i, j) for i in range(len(groups)) for j in range(i + 1, len(groups))]
        if pairs and self.params.weight:
            penalty = sum(coral_distance(groups[i], groups[j]) for i, j in pairs) / len(pairs)
            loss = loss + self.params.weight * penalty
        return loss


REGULARIZERS: list[type[ScreenCorrection]] = [GainBiasAugment, CoralPenalty]
