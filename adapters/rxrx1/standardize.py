"""Input standardizations: per channel, with statistics from some set of images.

- ``rxrx1/global``: one mean/std per channel from the training split (kaggle-rcic-1st's
  ``--data-normalization global``); not transductive.
- ``rxrx1/self-standardize``: each image by its own per-channel mean and std (WILDS'
  ``initialize_rxrx1_transform``: unbiased std, a zero std replaced by 1); not transductive.
- ``rxrx1/per-experiment`` and ``rxrx1/per-plate``: statistics from every image of the
  experiment (plate), all splits pooled (kaggle-rcic-1st's ``experiment`` normalization,
  computed on all images of the experiment); balanced plates make them label-agnostic.
  Transductive: a test image needs its whole experiment (plate).
- ``rxrx1/control-standardize``: statistics from the batch's negative-control wells only;
  transductive (needs the test batch's controls).

Ablations (controls): ``statistics: pooled`` uses one set of statistics for all batches
(so per-batch standardization degenerates to a transductive global one); ``statistics:
shuffled`` gives each batch the statistics of another batch (a mis-joined metadata bug).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from harness import Params, RunContext
from harness.data import ClassificationData
from harness.errors import HarnessError
from harness.training import Correction

from .screen import NEGATIVE, all_inputs, groups_of, split_names, with_inputs

Statistics = Literal["batch", "pooled", "shuffled"]


def batch_ids(data: ClassificationData, split: str, level: str) -> torch.Tensor:
    g = groups_of(data, split)
    if level == "experiment":
        return g["experiment"].clone()
    if level == "plate":
        return g["experiment"] * 8 + g["plate"]
    raise ValueError(level)


def derangement(ids: list[int], rng: np.random.Generator) -> dict[int, int]:
    """Each batch -> another batch (a random cyclic shift of a random order)."""
    order = [ids[i] for i in rng.permutation(len(ids))]
    return {order[i]: order[(i + 1) % len(order)] for i in range(len(order))}


class ScreenCorrection(Correction):
    """Base of the RxRx1 corrections: keeps the prepared screen; ``embed`` for probes."""

    def prepare(self, ctx: RunContext, data: Any) -> Any:
        self.data = data
        return data

    @torch.no_grad()
    def embed(self, model: torch.nn.Module, x: torch.Tensor, split: str,
              chunk: int = 2048) -> torch.Tensor:
        if not hasattr(model, "embed"):
            raise HarnessError(f"{type(model).__name__} has no embed(x)",
                               hint="use rxrx1/cnn (or a model with embed and head)")
        was = model.training
        model.eval()
        out = torch.cat([model.embed(x[i:i + chunk]) for i in range(0, len(x), chunk)])
        model.train(was)
        return out


class NoCorrection(ScreenCorrection):
    """No batch correction (the reference): raw inputs, plain training and evaluation."""

    name = "rxrx1/none"


class _StatsParams(Params):
    eps: float = Field(1e-6, gt=0, description="added to the std")


class GlobalStandardize(ScreenCorrection):
    """Standardize each channel with the training split's mean and std (not transductive)."""

    name = "rxrx1/global"
    Params = _StatsParams

    def prepare(self, ctx: RunContext, data: Any) -> Any:
        x = data.x_train
        mean = x.mean((0, 2, 3), keepdim=True)[0]
        std = x.std((0, 2, 3), keepdim=True)[0] + self.params.eps
        self.data = with_inputs(data, {s: (v - mean) / std for s, v in all_inputs(data).items()})
        return self.data


class SelfStandardize(ScreenCorrection):
    """Standardize each image by its own per-channel mean and std (WILDS' transform)."""

    name = "rxrx1/self-standardize"

    def prepare(self, ctx: RunContext, data: Any) -> Any:
        def one(x: torch.Tensor) -> torch.Tensor:
            mean = x.mean((2, 3), keepdim=True)
            std = x.std((2, 3), keepdim=True)
            std = torch.where(std == 0, torch.ones_like(std), std)
            return (x - mean) / std
        self.data = with_inputs(data, {s: one(v) for s, v in all_inputs(data).items()})
        return self.data


class BatchStandardizeParams(_StatsParams):
    statistics: Statistics = Field("batch", description="batch: each batch's own; ablations: "
                                   "pooled (one for all), shuffled (another batch's)")


class BatchStandardize(ScreenCorrection):
    """Standardize each channel with its experiment's statistics (transductive)."""

    name = "rxrx1/per-experiment"
    Params = BatchStandardizeParams
    transductive = True
    level: ClassVar[str] = "experiment"
    controls_only: ClassVar[bool] = False

    def prepare(self, ctx: RunContext, data: Any) -> Any:
        p = self.params
        xs = all_inputs(data)
        ids = {s: batch_ids(data, s, self.level) for s in split_names(data)}
        use = {s: (groups_of(data, s)["well_type"] == NEGATIVE) if self.controls_only
               else torch.ones(len(ids[s]), dtype=torch.bool) for s in ids}
        x_all = torch.cat([xs[s] for s in xs])
        id_all = torch.cat([ids[s] for s in xs])
        use_all = torch.cat([use[s] for s in xs])
        batches = sorted(set(id_all.tolist()))
        stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for b in batches:
            sel = x_all[(id_all == b) & use_all] if p.statistics != "pooled" else x_all[use_all]
            if len(sel) < 2:
                raise HarnessError(f"{self.name}: batch {b} has {len(sel)} usable images",
                                   hint="control statistics need negative-control wells "
                                   "in every batch")
            stats[b] = (sel.mean((0, 2, 3))[:, None, None],
                        sel.std((0, 2, 3))[:, None, None] + p.eps)
        if p.statistics == "shuffled":
            move = derangement(batches, ctx.rng)
            stats = {b: stats[move[b]] for b in batches}
        out = {}
        for s, x in xs.items():
            mean = torch.stack([stats[b][0] for b in ids[s].tolist()]) if len(x) else x
            std = torch.stack([stats[b][1] for b in ids[s].tolist()]) if len(x) else x
            out[s] = (x - mean) / std if len(x) else x
        self.data = with_inputs(data, out)
        return self.data


class PlateStandardize(BatchStandardize):
    """Standardize each channel with its plate's statistics (transductive)."""

    name = "rxrx1/per-plate"
    level = "plate"


class ControlStandardize(BatchStandardize):
    """Standardize with the experiment's negative-control statistics only (transductive)."""

    name = "rxrx1/control-standardize"
    controls_only = True


STANDARDIZATIONS: list[type[Correction]] = [NoCorrection, GlobalStandardize, SelfStandardize,
                                            BatchStandardize, PlateStandardize,
                                            ControlStandardize]
