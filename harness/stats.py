"""Aggregation across seeds: mean, standard deviation, 95% confidence interval."""

from __future__ import annotations

import math
from typing import Any


def summarize(values: list[float]) -> dict[str, Any]:
    """Mean, sample std, Student-t 95% interval (None with fewer than two values), n."""
    from scipy.special import stdtrit  # what scipy.stats.t.ppf computes, without scipy.stats
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(vals)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = sum(vals) / n
    if n == 1:
        return {"mean": mean, "std": 0.0, "ci95": None, "n": 1}
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    std = math.sqrt(var)
    half = float(stdtrit(n - 1, 0.975)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}
