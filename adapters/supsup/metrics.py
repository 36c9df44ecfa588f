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


METRICS: list[type[Metric]] = [Continual]
