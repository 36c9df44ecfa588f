"""Aggregation across seeds: mean, standard deviation, 95% confidence interval."""

from __future__ import annotations

import math
from typing import Any

# scipy.special.stdtrit(df, 0.975) for df = 1, 2, ..., 32 (scipy 1.17; tests/test_plan_cache.py
# checks them against the installed scipy): most summaries need no scipy import at all
T975 = (
    12.706204736174694, 4.302652729749462, 3.1824463052837078, 2.7764451051977934,
    2.5705818356363146, 2.4469118511449786, 2.364624251592784, 2.306004135204166,
    2.262157162798205, 2.228138851986274, 2.200985160091639, 2.1788128296672284,
    2.1603686564627913, 2.144786687917804, 2.131449545559776, 2.1199052992212546,
    2.1098155778333156, 2.1009220402410382, 2.0930240544083087, 2.085963447265864,
    2.0796138447276795, 2.0738730679040254, 2.0686576104190486, 2.0638985616280245,
    2.0595385527532972, 2.0555294386428735, 2.0518305164802846, 2.0484071417952454,
    2.045229642132703, 2.0422724563012378, 2.039513446396408, 2.0369333434601016,
)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if 1 <= df <= len(T975):
        return T975[df - 1]
    from scipy.special import stdtrit  # what scipy.stats.t.ppf computes, without scipy.stats
    return float(stdtrit(df, 0.975))


def summarize(values: list[float]) -> dict[str, Any]:
    """Mean, sample std, Student-t 95% interval (None with fewer than two values), n."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(vals)
    if n == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    mean = sum(vals) / n
    if n == 1:
        return {"mean": mean, "std": 0.0, "ci95": None, "n": 1}
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    std = math.sqrt(var)
    half = t975(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}
