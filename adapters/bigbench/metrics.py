"""Metric adapters: ``bigbench/metrics`` (BIG-bench's scores and their aggregation, and
BIG-bench's human-rater scores on the model's scale where the raters have one),
``bigbench/bootstrap`` (a percentile bootstrap interval of a per-example score) and
``bigbench/shot_gain`` (the paired gain over a baseline shot count, with its interval)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import Field

from harness import CellResult, HarnessError, Metric, Params, RunContext

from . import scoring


def _need(result: CellResult) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    out = result.outputs
    if "leaves" not in out or "examples" not in out:
        raise HarnessError("bigbench metrics need the outputs of bigbench/evaluate",
                           hint="use them with the bigbench/evaluate method")
    return out["examples"], out["leaves"]


def samples_by_leaf(examples: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per leaf task, the examples as BIG-bench samples (its key names)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ex in examples:
        s: dict[str, Any] = {"target": ex["target"]}
        if "choices" in ex:
            s.update(choice=ex["choices"], target_scores=ex["target_scores"],
                     log_prob=ex["scores"], absolute_log_prob=ex["absolute_scores"])
        if "raw_output" in ex:
            s["generative_response"] = ex["output"]
        if "log_prob_gen" in ex:
            s["log_prob_gen"] = ex["log_prob_gen"]
        groups[ex["task"]].append(s)
    return groups


def leaf_metrics(leaf: dict[str, Any], samples: list[dict[str, Any]],
                 extra: list[str]) -> list[str]:
    """The metrics BIG-bench computes for a leaf (plus ``extra``), for what was run."""
    names = list(leaf["metrics"])
    if "multiple_choice_grade" in names:
        names += ["calibration_multiple_choice_brier_score", "expected_calibration_error"]
    names += [m for m in extra if m not in names]
    have_mc = all("log_prob" in s for s in samples)
    have_gen = all("generative_response" in s for s in samples)
    return [m for m in names if (m not in scoring.MULTIPLE_CHOICE or have_mc)
            and (m not in scoring.GENERATIVE or have_gen)]


class BigBenchMetrics(Metric):
    """BIG-bench's metrics for the task (its declared ones), aggregated over subtasks."""

    name = "bigbench/metrics"
    outputs = ("preferred_score", "normalized_preferred_score", "normalized_aggregate_score",
               "low_score", "high_score", "human_*", "*/*")
    dynamic_outputs = True  # the task's own metric names
    version = "1"

    class Params(Params):
        extra: list[str] = Field(default_factory=list, description="metrics to compute "
                                 "besides those the task declares (e.g. macro_f1)")
        per_subtask: bool = Field(True, description="also report `<subtask>/<metric>`")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        examples, leaves = _need(result)
        groups = samples_by_leaf(examples)
        seed = ctx.derive("rouge").seed
        leaf_results = []
        for leaf in leaves:
            samples = groups.get(leaf["name"], [])
            if not samples:
                continue
            names = leaf_metrics(leaf, samples, self.params.extra)
            try:
                scores = scoring.task_scores(samples, names, seed)
            except ValueError as exc:
                raise HarnessError(f"{leaf['name']}: {exc}") from None
            if leaf["preferred_score"] == "bleurt":
                raise HarnessError(f"{leaf['name']}: BLEURT is not supported (it needs a "
                                   "checkpoint from the network)")
            if leaf["preferred_score"] not in scores:
                raise HarnessError(f"{leaf['name']}: its preferred score "
                                   f"{leaf['preferred_score']!r} was not computed",
                                   hint="enable the method's multiple_choice/generative "
                                   "parts that produce it")
            leaf_results.append({**leaf, "scores": scores})
        if not leaf_results:
            raise HarnessError("no examples were evaluated")
        task = result.outputs.get("task", leaf_results[0]["name"])
        agg = scoring.aggregate(task, leaf_results)
        out = dict(agg["scores"])
        out["preferred_score"] = agg["scores"].get(agg["preferred_score"],
                                                   out["normalized_aggregate_score"])
        out["normalized_preferred_score"] = scoring.normalized(
            out["preferred_score"], agg["low_score"], agg["high_score"])
        out["low_score"], out["high_score"] = agg["low_score"], agg["high_score"]
        out.update(human_scores(result.outputs.get("human_raters") or {}, out,
                                agg["preferred_score"]))
        if self.params.per_subtask and len(leaf_results) > 1:
            for leaf in leaf_results:
                short = leaf["name"].split(":", 1)[-1]
                for k, v in leaf["scores"].items():
                    out[f"{short}/{k}"] = v
        return {k: float(v) for k, v in out.items()}


HUMAN_PERCENT = ("multiple_choice_grade", "exact_str_match", "case_insensitive_str_match",
                 "numeric_match_with_0_1_relative_error")
HUMAN_NATIVE = ("bleu", "rouge1", "rouge2", "rougeLsum", "sequence_f1")


def human_scores(human: dict[str, dict[str, float]], model: dict[str, float],
                 preferred: str) -> dict[str, float]:
    """BIG-bench's human-rater scores for the metrics the model has, on the model's scale
    as ``human_<who>_<metric>``, and ``human_<who>_gap`` = rater minus model on the
    preferred metric (positive: the model is below the raters). Raters are scored on the
    whole task, not on a subtask subset. BIG-bench's rater file holds the grade and the
    string matches in percent and BLEU/ROUGE on their own 0-100 scale; the calibration
    scores there are not in percent (a Brier score of 0.046), so they are left out."""
    out: dict[str, float] = {}
    for who in ("average", "expert"):
        for k, v in (human.get(who) or {}).items():
            if k not in model:
                continue
            if k in HUMAN_PERCENT:
                out[f"human_{who}_{k}"] = v / 100
            elif k in HUMAN_NATIVE:
                out[f"human_{who}_{k}"] = v
        if f"human_{who}_{preferred}" in out:
            out[f"human_{who}_gap"] = out[f"human_{who}_{preferred}"] - model[preferred]
    return out


def per_example(examples: list[dict[str, Any]], metric: str) -> dict[str, np.ndarray]:
    """Per leaf task, each example's score for ``metric`` (a per-example mean metric)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for ex in examples:
        if metric == "multiple_choice_grade":
            if "correct" not in ex:
                continue
            value = ex["correct"]
        elif metric == "exact_str_match":
            if "raw_output" not in ex:
                continue
            value = float(ex["output"] in ex["target"])
        elif metric == "case_insensitive_str_match":
            if "raw_output" not in ex:
                continue
            value = float(ex["output"].strip().lower()
                          in [t.strip().lower() for t in ex["target"]])
        else:
            raise HarnessError(f"no per-example definition of {metric!r}",
                               hint="multiple_choice_grade, exact_str_match or "
                               "case_insensitive_str_match")
        groups[ex["task"]].append(float(value))
    return {k: np.asarray(v) for k, v in groups.items()}


def bootstrap_interval(groups: dict[str, np.ndarray], rng: np.random.Generator,
                       n_boot: int, level: float) -> tuple[float, float, float]:
    """(estimate, low, high): percentile bootstrap of the mean over groups of the group
    means, resampling examples within each group."""
    keys = sorted(groups)
    estimate = float(np.mean([groups[k].mean() for k in keys]))
    stats = np.zeros(n_boot)
    for k in keys:
        v = groups[k]
        idx = rng.integers(0, len(v), size=(n_boot, len(v)))
        stats += v[idx].mean(axis=1)
    stats /= len(keys)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return estimate, float(low), float(high)


class BootstrapInterval(Metric):
    """Percentile bootstrap interval of a per-example BIG-bench score (`<metric>_ci_low`)."""

    name = "bigbench/bootstrap"
    version = "1"

    class Params(Params):
        metric: str = Field("multiple_choice_grade", description="multiple_choice_grade, "
                            "exact_str_match or case_insensitive_str_match")
        n_boot: int = Field(2000, ge=100, description="bootstrap resamples")
        level: float = Field(0.95, gt=0, lt=1, description="interval coverage")

    @classmethod
    def output_names(cls, params: Any, method: Any = None) -> tuple[list[str], bool]:
        return [f"{params.metric}_ci_low", f"{params.metric}_ci_high"], False

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        examples, _ = _need(result)
        groups = per_example(examples, self.params.metric)
        if not groups:
            return {}
        rng = ctx.derive(f"bootstrap/{self.params.metric}").rng
        _, low, high = bootstrap_interval(groups, rng, self.params.n_boot, self.params.level)
        m = self.params.metric
        return {f"{m}_ci_low": low, f"{m}_ci_high": high}


class ShotGain(Metric):
    """Paired gain of the grade over ``baseline_shots`` (`shot_gain`, its bootstrap interval).

    Each example's grade at the method's shots minus its grade at the baseline shots (the
    same query, found by its position in the task file); the interval resamples examples
    within each subtask, as ``bigbench/bootstrap`` does, so the pairing is kept.
    """

    name = "bigbench/shot_gain"
    outputs = ("shot_gain", "shot_gain_ci_low", "shot_gain_ci_high",
               "baseline_multiple_choice_grade")
    version = "1"

    class Params(Params):
        n_boot: int = Field(2000, ge=100, description="bootstrap resamples")
        level: float = Field(0.95, gt=0, lt=1, description="interval coverage")

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        examples, _ = _need(result)
        examples = [ex for ex in examples if "baseline_correct" in ex]
        if not examples:  # no baseline_shots, or no multiple-choice leaf: nothing to say
            return {}
        gains: dict[str, list[float]] = defaultdict(list)
        base: dict[str, list[float]] = defaultdict(list)
        for ex in examples:
            gains[ex["task"]].append(float(ex["correct"]) - float(ex["baseline_correct"]))
            base[ex["task"]].append(float(ex["baseline_correct"]))
        rng = ctx.derive("bootstrap/shot_gain").rng
        estimate, low, high = bootstrap_interval(
            {k: np.asarray(v) for k, v in gains.items()}, rng, self.params.n_boot,
            self.params.level)
        baseline = float(np.mean([np.mean(v) for v in base.values()]))
        return {"shot_gain": estimate, "shot_gain_ci_low": low, "shot_gain_ci_high": high,
                "baseline_multiple_choice_grade": baseline}


METRICS: list[type[Metric]] = [BigBenchMetrics, BootstrapInterval, ShotGain]
