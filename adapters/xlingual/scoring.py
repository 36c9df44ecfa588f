"""Decision rules: label scores from log-likelihoods, with and without calibration.

``direct``: the label word's summed log-probability as the continuation of the query
(BIG-bench's multiple-choice scoring, no length normalization).

``mcp`` (maximum-confidence prediction, Winata et al. 2021): for each label the model
answers "is it this label?"; ``mcp_true`` ranks labels by P(true), ``mcp_diff`` by
P(true) - P(false).

Calibration (Zhao et al. 2021, "Calibrate before use"): the same prompt with a
content-free input ("N/A") gives the model's bias p_cf; the calibrated probabilities are
``diag(p_cf)^-1 p`` renormalized, so the decision is ``argmax log p - log p_cf``:

- ``direct_cal``: p and p_cf are the label probabilities normalized over the labels;
- ``mcp_true_cal``: per label, P(true | x, l) / P(true | N/A, l);
- ``mcp_diff_cal``: per label the binary (true, false) distribution, calibrated by the
  content-free one and renormalized, then q(true) - q(false).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

DIRECT_RULES = ("direct", "direct_cal")
MCP_RULES = ("mcp_true", "mcp_true_cal", "mcp_diff", "mcp_diff_cal")
BASELINES = ("random", "majority")


def _normalize(lp: np.ndarray) -> np.ndarray:
    return lp - logsumexp(lp, axis=-1, keepdims=True)


def direct_scores(lp: np.ndarray, lp_cf: np.ndarray) -> dict[str, np.ndarray]:
    """``lp``: (queries, labels) log-likelihoods; ``lp_cf``: (labels,) for "N/A"."""
    return {"direct": lp, "direct_cal": _normalize(lp) - _normalize(lp_cf)[None, :]}


def mcp_scores(lp: np.ndarray, lp_cf: np.ndarray) -> dict[str, np.ndarray]:
    """``lp``: (queries, labels, 2) log-likelihoods of (true, false); ``lp_cf``:
    (labels, 2) for the content-free input."""
    true, false = lp[..., 0], lp[..., 1]
    binary = _normalize(lp) - _normalize(lp_cf)[None]
    q = np.exp(_normalize(binary))
    return {"mcp_true": true, "mcp_diff": np.exp(true) - np.exp(false),
            "mcp_true_cal": true - lp_cf[None, :, 0], "mcp_diff_cal": q[..., 0] - q[..., 1]}


def predict(scores: np.ndarray) -> np.ndarray:
    return np.argmax(scores, axis=-1)
