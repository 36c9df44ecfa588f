"""``supsup/continual``: the continual-learning numbers from a sequential method's outputs.

For Supermasks in Superposition (Wortsman et al., arXiv 2006.14769) and its fine-tuning
baseline. ``forgetting`` is the mean, over all tasks but the last, of the accuracy right
after learning a task minus its accuracy after the last task; task-inference accuracy is
the fraction of test batches (pooled over tasks) whose task was inferred right, as the
official ``task_correct`` counts batches.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import Field

import harness
from harness import CellResult, HarnessError, Metric, RunContext


class Continual(Metric):
    """Average accuracy (GG/GN), task inference, forgetting, per-task and bitwise checks."""

    name = "supsup/continual"
    outputs = ("avg_accuracy", "forgetting", "max_forgetting", "task0_bitwise_unchanged",
               "params_unchanged", "masks_allocated", "masks_allocated_minus_tasks",
               "acc_task_*", "task_inference_accuracy*", "avg_accuracy_gn*", "gg_minus_gn*")

    class Params(harness.Params):
        per_task: int = Field(20, ge=0, description="report acc_task_<i> for at most this "
                              "many tasks")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        c: dict[str, Any] | None = result.outputs.get("continual")
        if c is None:
            raise HarnessError("supsup/continual needs the outputs of supsup/train or "
                               "supsup/finetune")
        final, after = c["final_gg"], c["acc_after_learning"]
        T = len(final)
        out: dict[str, float] = {
            "avg_accuracy": sum(final) / T,
            "forgetting": (sum(a - f for a, f in zip(after[:-1], final[:-1], strict=True))
                           / (T - 1)) if T > 1 else 0.0,
            "max_forgetting": max((a - f for a, f in zip(after, final, strict=True)),
                                  default=0.0),
            "task0_bitwise_unchanged": float(c["task0_bitwise_unchanged"]),
            "params_unchanged": float(c["params_unchanged"]),
        }
        if "masks_allocated" in c:  # supsup/nns
            out["masks_allocated"] = float(c["masks_allocated"])
            out["masks_allocated_minus_tasks"] = float(c["masks_allocated"] - T)
        per_task = cast(Continual.Params, self.params).per_task
        for i in range(min(T, per_task)):
            out[f"acc_task_{i}"] = final[i]
        inference: dict[str, dict[str, Any]] = c.get("inference") or {}
        for mode, r in inference.items():
            suffix = "" if mode == c["primary"] else "_" + mode.replace("/", "_")
            gn = sum(r["per_task_gn"]) / len(r["per_task_gn"])
            out["task_inference_accuracy" + suffix] = r["task_accuracy"]
            out["avg_accuracy_gn" + suffix] = gn
            out["gg_minus_gn" + suffix] = out["avg_accuracy"] - gn
        for point in c.get("curve") or []:
            out[f"task_inference_accuracy_at_{point['tasks']}"] = point["task_inference_accuracy"]
        return out


class Hopfield(Metric):
    """HopSupSup: accuracy with the masks recovered from the Hopfield network against the
    stored masks (GG), how close the recovered masks are, and the memory's size after
    each learned task (``hop_state_floats_at_<k>``; ``hop_state_floats_growth`` is the
    size after the last task minus after the first)."""

    name = "supsup/hopfield"
    outputs = ("avg_accuracy_hop", "gg_minus_hop", "hop_mask_distance", "hop_exact_fraction",
               "hop_nearest_right", "hop_state_floats", "hop_state_floats_growth",
               "stored_mask_floats", "hop_state_floats_at_*")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        h: dict[str, Any] | None = result.outputs.get("hopfield")
        c: dict[str, Any] | None = result.outputs.get("continual")
        if h is None or c is None:
            raise HarnessError("supsup/hopfield needs the outputs of supsup/hopsupsup")
        T = len(h["recovered_accuracy"])
        gg = sum(c["final_gg"]) / T
        hop = sum(h["recovered_accuracy"]) / T
        floats = h["state_floats_by_tasks"]
        out = {
            "avg_accuracy_hop": hop,
            "gg_minus_hop": gg - hop,
            "hop_mask_distance": sum(h["mask_distance"]) / T,
            "hop_exact_fraction": sum(map(float, h["exact"])) / T,
            "hop_nearest_right": sum(float(j == i) for i, j in enumerate(h["nearest"])) / T,
            "hop_state_floats": float(h["state_floats"]),
            "hop_state_floats_growth": float(floats[-1] - floats[0]),
            "stored_mask_floats": float(h["per_task_mask_floats"] * T),
        }
        for k, n in enumerate(floats, start=1):
            out[f"hop_state_floats_at_{k}"] = float(n)
        return out


METRICS: list[type[Metric]] = [Continual, Hopfield]
