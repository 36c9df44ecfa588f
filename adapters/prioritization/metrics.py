"""Metrics for example-selection experiments (Hu et al., arXiv:2107.07741).

They read the outputs of ``torch/train-classifier`` (``backprop_counts``, ``history``,
``counts``) and the corruption mask a noise wrapper leaves in ``data.meta["noisy"]``:

- ``prioritization/noisy-share``: the share of corrupted examples among backpropagated
  examples, overall and in equal phases of training (phases need the
  ``prioritization/selection-trace`` observer, which records every step's batch);
- ``prioritization/to-target``: backward- and forward-passed examples until clean test
  accuracy first reaches a target (read off the training history, so the resolution is the
  method's ``eval_every``); ``inf`` when never reached;
- ``prioritization/curve``: writes ``curve.json`` (test accuracy against backward and
  forward passes, and the noisy share in windows of backprops) to the cell's artifacts, for
  the cross-cell figure ``harness report`` draws (see :mod:`.plots`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from pydantic import Field

from harness import CellResult, HarnessError, Metric, Params, RunContext
from harness.training import StepInfo, TrainingObserver, TrainingRun

TRACE = "prioritization/selection-trace"


class SelectionTrace(TrainingObserver):
    """Records which training examples every optimizer step backpropagated, in order."""

    name = TRACE
    version = "1"

    def on_start(self, ctx: RunContext, run: TrainingRun) -> None:
        super().on_start(ctx, run)
        self.batches: list[torch.Tensor] = []

    def on_step(self, info: StepInfo) -> None:
        self.batches.append(info.batch.detach().to("cpu", torch.long).clone())

    def on_end(self) -> dict[str, Any]:
        order = torch.cat(self.batches) if self.batches else torch.empty(0, dtype=torch.long)
        return {"order": order}


def _need(result: CellResult, key: str, metric: str) -> Any:
    if key not in result.outputs:
        raise HarnessError(f"metric {metric!r} needs output {key!r}; use it with "
                           "torch/train-classifier", hint="this method outputs: "
                           + ", ".join(sorted(result.outputs)))
    return result.outputs[key]


def noisy_mask(result: CellResult) -> torch.Tensor | None:
    meta = getattr(result.data, "meta", None) or {}
    mask = meta.get("noisy")
    return None if mask is None else torch.as_tensor(mask).bool().cpu()


def trace_order(result: CellResult) -> torch.Tensor | None:
    obs = result.outputs.get("observers") or {}
    entry = obs.get(TRACE)
    return None if entry is None else torch.as_tensor(entry["order"]).long()


def window_shares(order: torch.Tensor, noisy: torch.Tensor, pieces: int) -> list[float]:
    """Noisy share in ``pieces`` consecutive, equal-length chunks of the backprop order."""
    if len(order) == 0:
        return [math.nan] * pieces
    flags = noisy[order].double()
    return [float(chunk.mean()) if len(chunk) else math.nan
            for chunk in torch.tensor_split(flags, pieces)]


class NoisyShare(Metric):
    """Share of corrupted examples among the examples selected for backprop."""

    name = "prioritization/noisy-share"
    outputs = ("noisy_share", "noisy_rate", "noisy_enrichment", "noisy_share_phase*")
    version = "1"

    class Params(Params):
        phases: int = Field(4, ge=1, description="also report the share in this many equal "
                            "phases of training (needs the selection-trace observer)")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        counts = torch.as_tensor(_need(result, "backprop_counts", self.name)).double().cpu()
        noisy = noisy_mask(result)
        if noisy is None:  # clean data: nothing is corrupted
            noisy = torch.zeros(len(counts), dtype=torch.bool)
        if len(noisy) != len(counts):
            raise HarnessError(f"{self.name}: the corruption mask covers {len(noisy)} examples "
                               f"but training saw {len(counts)}")
        total = float(counts.sum())
        out = {"noisy_share": float(counts[noisy].sum()) / total if total else math.nan,
               "noisy_rate": float(noisy.double().mean())}
        out["noisy_enrichment"] = (out["noisy_share"] / out["noisy_rate"]
                                   if out["noisy_rate"] > 0 else math.nan)
        order = trace_order(result)
        if order is not None and self.params.phases > 1:
            for i, share in enumerate(window_shares(order, noisy, self.params.phases), 1):
                out[f"noisy_share_phase{i}"] = share
        return out


class ToTarget(Metric):
    """Backward and forward passes until clean test accuracy first reaches a target."""

    name = "prioritization/to-target"
    version = "1"

    class Params(Params):
        target: float = Field(0.95, gt=0, le=1, description="test accuracy to reach")
        prefix: str = Field("", description="prefix for the metric names")

    @classmethod
    def output_names(cls, params: Any, method: Any = None) -> tuple[list[str], bool]:
        names = ("backprops_to_target", "forwards_to_target", "reached_target")
        return [params.prefix + n for n in names], False

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        history = _need(result, "history", self.name)
        for entry in history:
            if entry["test_accuracy"] >= self.params.target:
                back, fwd = float(entry["backward_examples"]), float(entry["forward_examples"])
                reached = 1.0
                break
        else:
            back = fwd = math.inf
            reached = 0.0
        pre = self.params.prefix
        return {f"{pre}backprops_to_target": back, f"{pre}forwards_to_target": fwd,
                f"{pre}reached_target": reached}


class Curve(Metric):
    """Write curve.json: test accuracy vs backward/forward passes and windowed noisy share."""

    name = "prioritization/curve"
    outputs = ()
    version = "1"

    class Params(Params):
        window: int = Field(1024, ge=1, description="backprops per noisy-share window")
        plot: bool = Field(False, description="also draw this cell's curve.png")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        history = _need(result, "history", self.name)
        curve: dict[str, Any] = {
            "backward": [h["backward_examples"] for h in history],
            "forward": [h["forward_examples"] for h in history],
            "test_accuracy": [h["test_accuracy"] for h in history],
        }
        order, noisy = trace_order(result), noisy_mask(result)
        if order is not None and noisy is not None and len(order):
            w = self.params.window
            flags = noisy[order].double()
            starts = range(0, len(order), w)
            curve["share_backward"] = [min(len(order), s + w) for s in starts]
            curve["noisy_share"] = [float(flags[s:s + w].mean()) for s in starts]
        ctx.artifact("curve.json").write_text(json.dumps(curve), encoding="utf-8")
        if self.params.plot:
            from .plots import plot_cell
            plot_cell(curve, ctx.artifact("curve.png"))
        return {}


METRICS = [NoisyShare, ToTarget, Curve]
