"""Metrics on an agent's outputs: return curves, episodes to the optimal return, and the
dynamics measurements of D3G. A metric that does not apply to a method's outputs (the
forward-model error of TD3) reports nothing rather than failing the cell."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from harness import CellResult, HarnessError, Metric, Params, RunContext


def _curve(result: CellResult, metric: str) -> list[list[float]]:
    curve = result.outputs.get("curve")
    if not curve:
        raise HarnessError(f"metric {metric!r} needs an evaluation return curve (output "
                           "'curve'), which this method does not produce",
                           hint="use it with a qss/* agent")
    return curve


class EpisodesToOptimal(Metric):
    """Training episodes until the greedy policy reaches (and holds) the optimal return."""

    name = "qss/episodes-to-optimal"
    outputs = ("episodes_to_optimal", "reached_optimal", "episodes_to_first_optimal")
    version = "1"

    class Params(Params):
        patience: int = Field(1, ge=1, description="consecutive optimal evaluations needed; "
                              "the first of them counts")
        tolerance: float = Field(1e-9, ge=0)

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        curve = _curve(result, self.name)
        optimal = result.outputs.get("optimal_return")
        if optimal is None:
            raise HarnessError(f"{self.name} needs an environment with a known optimal return",
                               hint="use it on a qss/gridworld environment")
        p: EpisodesToOptimal.Params = self.params  # type: ignore[assignment]
        ok = [ret >= optimal - p.tolerance for _, ret in curve]
        k = p.patience
        first = next((i for i in range(len(ok) - k + 1) if all(ok[i:i + k])), None)
        touched = next((i for i, v in enumerate(ok) if v), None)
        beyond = float(result.outputs.get("episodes", curve[-1][0])) + 1
        return {
            "episodes_to_optimal": float(curve[first][0]) if first is not None else beyond,
            "reached_optimal": float(first is not None),
            "episodes_to_first_optimal": (float(curve[touched][0]) if touched is not None
                                          else beyond),
        }


class FinalReturn(Metric):
    """The last evaluation's return (and, when the optimum is known, the regret to it)."""

    name = "qss/final-return"
    outputs = ("final_return", "optimal_return", "final_regret")
    version = "1"

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        curve = _curve(result, self.name)
        out = {"final_return": float(curve[-1][1])}
        optimal = result.outputs.get("optimal_return")
        if optimal is not None:
            out["optimal_return"] = float(optimal)
            out["final_regret"] = float(optimal) - out["final_return"]
        return out


class ReturnCurve(Metric):
    """Mean of the evaluation return curve (its normalised area) and its best point."""

    name = "qss/return-curve"
    outputs = ("mean_eval_return", "best_eval_return")
    version = "1"

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        curve = _curve(result, self.name)
        values = [float(r) for _, r in curve]
        return {"mean_eval_return": sum(values) / len(values), "best_eval_return": max(values)}


def _last(result: CellResult, key: str) -> float | None:
    log: list[dict[str, Any]] = result.outputs.get("dynamics_log") or []
    values = [d[key] for d in log if key in d and not math.isnan(d[key])]
    return float(values[-1]) if values else None


class ForwardModelError(Metric):
    """D3G's forward-model MSE on the environment's held-out random-policy transitions."""

    name = "qss/forward-model-error"
    outputs = ("forward_model_error",)
    version = "1"

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        value = _last(result, "forward_model_error")
        return {} if value is None else {"forward_model_error": value}


class CycleLoss(Metric):
    """D3G's cycle loss, mse(s + f(s, I(s, s + tau(s))), s + tau(s)), at the end of training.

    The mean over the model updates of the last evaluation period."""

    name = "qss/cycle-loss"
    outputs = ("cycle_loss",)
    version = "1"

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        value = _last(result, "cycle_loss")
        return {} if value is None else {"cycle_loss": value}


class ValueBias(Metric):
    """The critic's value at the evaluation start states minus the discounted return that
    followed, at the last evaluation (positive: over-estimation)."""

    name = "qss/value-bias"
    outputs = ("value_bias",)
    version = "1"

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        value = _last(result, "value_bias")
        return {} if value is None else {"value_bias": value}


METRICS: list[type[Metric]] = [EpisodesToOptimal, FinalReturn, ReturnCurve, ForwardModelError,
                               CycleLoss, ValueBias]
