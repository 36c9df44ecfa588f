"""Metric ``xlingual/metrics``: accuracy, balanced accuracy with a bootstrap interval, the
majority rate and the per-label prediction counts, per (language, k, rule), plus the
summary numbers the claims use.

By default only the claims' ``rule`` is reported (``rules: all`` adds every rule; the
report's table always shows all). Names: ``<language>.k<k>.<rule>.<stat>`` with stat
``accuracy``, ``balanced_accuracy``, ``bacc_ci_low``, ``bacc_ci_high``, ``majority_rate``
(share of the most frequent gold label among the queries), ``chance`` and
``pred.<label>`` (how often the rule predicted it).

Balanced accuracy is the mean recall over the gold labels present among the queries, so
any constant predictor scores 1/(labels present) (multiemo: 1/3, "neutral" never occurs).
Its interval is a percentile bootstrap over queries (``n_boot`` resamples from the run
context). Chance is 1/(labels present).

Summary for the fixed ``rule`` at ``shots`` (the claims' method, chosen before running):
``source_bacc_ci_low`` and ``source_margin`` (that bound minus chance);
``languages_above_chance`` (non-source languages whose lower bound is above chance);
``k_gain``: mean over the languages where either ``shots`` or ``base_shots`` clears
chance of the paired difference of balanced accuracy (0 when none does) and
``k_gain_languages`` their number.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

import numpy as np
from pydantic import Field

from harness import CellResult, HarnessError, Metric, Params, RunContext

#: a lower bound must exceed chance by more than float noise (a constant predictor's
#: bound equals chance exactly)
EPS = 1e-9


def balanced_accuracy(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> float:
    recalls = [float(np.mean(pred[gold == c] == c)) for c in range(n_labels)
               if np.any(gold == c)]
    return float(np.mean(recalls))


def bootstrap_bacc(gold: np.ndarray, pred: np.ndarray, n_labels: int,
                   rng: np.random.Generator, n_boot: int,
                   level: float) -> tuple[float, float]:
    """Percentile interval of the balanced accuracy, resampling queries."""
    n = len(gold)
    idx = rng.integers(0, n, size=(n_boot, n))
    g, hit = gold[idx], (pred[idx] == gold[idx])
    recalls = []
    for c in range(n_labels):
        mask = g == c
        count = mask.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(count > 0, (hit & mask).sum(axis=1) / count, np.nan))
    stats = np.nanmean(np.stack(recalls), axis=0)
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


def table(examples: list[dict[str, Any]], labels: list[str], rules: list[str],
          rng: np.random.Generator, n_boot: int, level: float) -> dict[str, float]:
    index = {x: i for i, x in enumerate(labels)}
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for ex in examples:
        groups[ex["language"], ex["shots"]].append(ex)
    out: dict[str, float] = {}
    for (lang, k), rows in sorted(groups.items()):
        gold = np.array([index[r["gold"]] for r in rows])
        counts = np.bincount(gold, minlength=len(labels))
        for rule in rules:
            if rule not in rows[0]["pred"]:
                continue
            pred = np.array([index[r["pred"][rule]] for r in rows])
            key = f"{lang}.k{k}.{rule}"
            out[f"{key}.accuracy"] = float(np.mean(pred == gold))
            out[f"{key}.balanced_accuracy"] = balanced_accuracy(gold, pred, len(labels))
            low, high = bootstrap_bacc(gold, pred, len(labels), rng, n_boot, level)
            out[f"{key}.bacc_ci_low"], out[f"{key}.bacc_ci_high"] = low, high
            out[f"{key}.majority_rate"] = float(counts.max() / len(gold))
            out[f"{key}.chance"] = 1.0 / int(np.count_nonzero(counts))
            for c, x in enumerate(labels):
                out[f"{key}.pred.{x}"] = float(np.sum(pred == c))
    return out


def summary(t: dict[str, float], languages: list[str], source: str, rule: str, shots: int,
            base: int) -> dict[str, float]:
    def get(lang: str, k: int, stat: str) -> float:
        key = f"{lang}.k{k}.{rule}.{stat}"
        if key not in t:
            raise HarnessError(f"xlingual/metrics: no {key}", hint="the method must run "
                               f"shots {base} and {shots} with the rule {rule!r}")
        return t[key]

    def clears(lang: str, k: int) -> bool:
        return get(lang, k, "bacc_ci_low") > get(lang, k, "chance") + EPS

    above = [x for x in languages if x != source and clears(x, shots)]
    cleared = [x for x in languages if clears(x, shots) or clears(x, base)]
    gains = [get(x, shots, "balanced_accuracy") - get(x, base, "balanced_accuracy")
             for x in cleared]
    return {"source_bacc_ci_low": get(source, shots, "bacc_ci_low"),
            "source_margin": get(source, shots, "bacc_ci_low") - get(source, shots, "chance"),
            "source_balanced_accuracy": get(source, shots, "balanced_accuracy"),
            "languages_above_chance": float(len(above)),
            "k_gain": float(np.mean(gains)) if gains else 0.0,
            "k_gain_languages": float(len(cleared))}


class CrossLingualMetrics(Metric):
    """Per-language accuracy, balanced accuracy (bootstrap CI), majority rate, prediction
    counts; summary numbers for the claims' fixed rule."""

    name = "xlingual/metrics"
    outputs = ("source_bacc_ci_low", "source_margin", "source_balanced_accuracy",
               "languages_above_chance", "k_gain", "k_gain_languages", "*.k*.*")
    version = "1"

    class Params(Params):
        rules: list[str] | Literal["all"] | None = Field(
            None, description="decision rules to report besides `rule` ('all': every rule "
            "the method produced; the report's table always shows all)")
        rule: str = Field("direct_cal", description="the claims' rule, fixed in advance")
        shots: int = Field(3, ge=0, description="the claims' k")
        base_shots: int = Field(0, ge=0, description="the k that `shots` is compared with")
        n_boot: int = Field(1000, ge=100)
        level: float = Field(0.95, gt=0, lt=1)

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        out = result.outputs
        if "examples" not in out or "labels" not in out or "rules" not in out:
            raise HarnessError("xlingual/metrics needs the outputs of xlingual/icl")
        p = self.params
        extra = out["rules"] if p.rules == "all" else (p.rules or [])
        rules = sorted(set(extra) | {p.rule})
        t = table(out["examples"], out["labels"], rules, ctx.derive("bootstrap").rng,
                  p.n_boot, p.level)
        shots = out["shots"]
        if p.shots in shots and p.base_shots in shots:
            t.update(summary(t, out["languages"], out["source"], p.rule, p.shots,
                             p.base_shots))
        return t


METRICS: list[type[Metric]] = [CrossLingualMetrics]
