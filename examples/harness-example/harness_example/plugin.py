"""The example plugin: a dataset, a method and a metric, registered with one hook.

- ``example/two-moons`` (dataset): two interleaving half-circles, returned as
  :class:`harness.ClassificationData`, so every built-in model, the generic
  ``torch/train-classifier`` training and ``--limit`` work on it unchanged.
- ``example/nearest-centroid`` (method): classify by the nearest class mean. It returns
  the same output keys as the generic training (``test_logits``, ``test_targets``), so the
  built-in ``accuracy`` metric scores it too.
- ``example/balanced-accuracy`` (metric): the mean per-class recall, computed from a
  :class:`harness.CellResult` (what every metric receives).

torch is imported inside the calls: ``harness list`` and ``harness validate`` then never
import it for this plugin.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

import harness
from harness import (
    CellResult,
    ClassificationData,
    Dataset,
    HarnessError,
    Method,
    Metric,
    Params,
    RunContext,
)


class TwoMoons(Dataset):
    """Two interleaving half-circles with Gaussian noise (a non-linear boundary)."""

    name = "example/two-moons"
    version = "1"  # bump it when a change alters the data: finished cells then re-run

    class Params(Params):
        n: int = Field(200, ge=10, description="examples per split (train and test)")
        noise: float = Field(0.1, ge=0, description="std of the Gaussian noise added")

    def load(self, ctx: RunContext) -> ClassificationData:
        import numpy as np
        import torch
        p = self.params
        rng = ctx.rng  # numpy Generator seeded by the run context: never np.random

        def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            y = rng.integers(0, 2, size=n)
            angle = rng.uniform(0, math.pi, size=n)
            x0 = rng.standard_normal((n, 2)) * p.noise
            upper = y == 0  # class 0: the upper moon; class 1: the lower one, shifted
            x0[:, 0] += np.where(upper, np.cos(angle), 1 - np.cos(angle))
            x0[:, 1] += np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
            return torch.tensor(x0, dtype=torch.float32), torch.tensor(y).long()

        x_train, y_train = draw(p.n)
        x_test, y_test = draw(p.n)
        return ClassificationData(x_train=x_train, y_train=y_train, x_test=x_test,
                                  y_test=y_test, num_classes=2, name="two-moons")


class NearestCentroid(Method):
    """Nearest class mean in input space: a linear baseline that needs no training."""

    name = "example/nearest-centroid"

    class Params(Params):
        metric: str = Field("euclidean", pattern="^(euclidean|cosine)$",
                            description="distance to the class means")

    def run(self, ctx: RunContext, data: ClassificationData, model: Any) -> dict[str, Any]:
        import torch
        if not isinstance(data, ClassificationData):
            raise HarnessError(f"{self.name} needs classification data, got "
                               f"{type(data).__name__}", hint="use it with a dataset that "
                               "returns harness.ClassificationData")
        means = torch.stack([data.x_train[data.y_train == c].mean(0)
                             for c in range(data.num_classes)])
        x = data.x_test
        if self.params.metric == "cosine":
            x = torch.nn.functional.normalize(x, dim=1)
            means = torch.nn.functional.normalize(means, dim=1)
        logits = -torch.cdist(x, means)  # nearer: larger logit
        return {"test_logits": logits, "test_targets": data.y_test,
                "scalars": {"centroid_distance": float(torch.cdist(means, means)[0, 1])}}


class BalancedAccuracy(Metric):
    """Mean per-class recall of the test logits (each class weighs the same)."""

    name = "example/balanced-accuracy"
    outputs = ("balanced_accuracy",)  # the metric name(s) compute returns

    class Params(Params):
        logits: str = Field("test_logits", description="output key holding the logits")
        targets: str = Field("test_targets", description="output key holding the classes")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        import torch
        p = self.params
        missing = [k for k in (p.logits, p.targets) if k not in result.outputs]
        if missing:
            raise HarnessError(f"{self.name} needs outputs {missing}", hint="the method "
                               "must return them (torch/train-classifier does)")
        pred = torch.as_tensor(result.outputs[p.logits]).argmax(-1)
        target = torch.as_tensor(result.outputs[p.targets]).long()
        recalls = [(pred[target == c] == c).double().mean().item()
                   for c in target.unique().tolist()]
        return {"balanced_accuracy": sum(recalls) / len(recalls)}


@harness.hookimpl
def harness_adapters() -> list[type[harness.Adapter]]:
    return [TwoMoons, NearestCentroid, BalancedAccuracy]
