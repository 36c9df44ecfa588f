"""BIG-bench's metrics and score aggregation, as pure functions.

Definitions follow ``bigbench/api/task_metrics.py`` and ``bigbench/api/results.py``
(google/BIG-bench 1.0.0). A *sample* is a dict with BIG-bench's keys: ``choice`` (the
choices in scoring order), ``target_scores``, ``log_prob`` (normalized across choices
unless the task asks for absolute normalization), ``absolute_log_prob``, ``target`` (list
of strings), ``generative_response`` and ``log_prob_gen``.

- ``argmax`` breaks ties deterministically: among the maximal entries it takes the one
  at ``sha256(float64 bytes of the array) mod (number of ties)``;
- ``multiple_choice_grade``: mean target score of the chosen choice;
- calibration: multi-class Brier score averaged over (example, choice) pairs, and the
  expected calibration error over 15 equal-width confidence buckets (a confidence equal
  to a bucket's upper edge goes to the next bucket; 1.0 stays in the last);
- ``exact_str_match`` / ``case_insensitive_str_match`` (stripped, lower-cased),
  ``numeric_match_with_0_1_relative_error``, ``sequence_f1`` (token accuracy after
  padding with "O" or trimming, x100), ``macro_f1`` (scikit-learn), ``log_likelihood``
  (+ per word / per char with a single target, logsumexp over targets otherwise);
- ``bleu``: sacrebleu corpus BLEU (``intl`` tokenizer, exp smoothing, references padded
  with the first reference), and ``rouge``: rouge-score with the best reference per
  example and the bootstrap aggregator's mid F-measure x100, as t5.evaluation does;
- aggregation over subtasks: mean of each metric, ``normalized_aggregate_score`` = mean
  over subtasks of ``100 * (preferred - low) / (high - low)``; the aggregate keeps
  ``multiple_choice_grade`` as its preferred score (low = mean of the lows) when every
  subtask prefers it, else ``normalized_aggregate_score`` on 0-100.

The rouge bootstrap draws from numpy's global generator in rouge-score; it is seeded
from the run context and restored afterwards, so results are reproducible.
"""

from __future__ import annotations

import copy
import hashlib
import statistics
import warnings
from typing import Any

import numpy as np
from scipy.special import logsumexp

from .task import SCORE_RANGES

RENORMALIZED = ["bleurt", "calibration_multiple_choice_brier_score",
                "expected_calibration_error", "exact_str_match", "case_insensitive_str_match",
                "multiple_choice_grade", "numeric_match_with_0_1_relative_error", "macro_f1"]
Sample = dict[str, Any]


def argmax(values: Any) -> int:
    """Index of the maximum; ties broken by a hash of the values (BIG-bench's rule)."""
    arr = np.asarray(values, dtype=np.float64)
    ties = np.arange(len(arr))[arr == np.max(arr)]
    digest = int(hashlib.sha256(arr.tobytes()).hexdigest(), 16)
    return int(ties[digest % len(ties)])


def chosen(sample: Sample) -> str:
    return sample["choice"][argmax(sample["log_prob"])]


def multiple_choice_grade(samples: list[Sample]) -> float:
    return sum(s["target_scores"][chosen(s)] for s in samples) / len(samples)


def _probs(sample: Sample) -> tuple[np.ndarray, list[float]]:
    scores = sample["target_scores"]
    if min(scores.values()) < 0:
        warnings.warn(f"negative target score in {scores}", stacklevel=3)
    ordered = [scores[c] for c in sample["choice"]]
    total = sum(ordered)
    target = [0.0] * len(ordered) if total == 0 else [s / total for s in ordered]
    lp = np.array(sample["log_prob"], dtype=np.float64)
    lp = lp - np.max(lp)
    probs = np.exp(lp) / np.sum(np.exp(lp))
    return probs, target


def brier_score(samples: list[Sample]) -> float:
    total, count = 0.0, 0
    for s in samples:
        probs, target = _probs(s)
        for t, p in zip(target, probs, strict=True):
            total += t * (p - 1) ** 2 + (1 - t) * p ** 2
            count += 1
    return total / count


def expected_calibration_error(samples: list[Sample], buckets: int = 15) -> float:
    conf, correct = [], []
    for s in samples:
        probs, target = _probs(s)
        conf.append(float(np.max(probs)))
        correct.append(int(np.argmax(target) == np.argmax(probs)))
    members: list[list[int]] = [[] for _ in range(buckets)]
    for i, c in enumerate(conf):
        j = 0
        for j in range(buckets):
            if c < (j + 1) / buckets:
                break
        members[j].append(i)
    n = len(samples)
    ece = 0.0
    for idx in members:
        if idx:
            acc = float(np.mean([correct[i] for i in idx]))
            mean_conf = float(np.mean([conf[i] for i in idx]))
            ece += len(idx) / n * abs(acc - mean_conf)
    return ece


def weighted_log_probabilities(samples: list[Sample]) -> float:
    total = 0.0
    for s in samples:
        w = np.array([s["target_scores"][c] for c in s["choice"]])
        total += float(np.sum(w * np.array(s["absolute_log_prob"])))
    return total / len(samples)


def weighted_probabilities(samples: list[Sample]) -> float:
    total = 0.0
    for s in samples:
        w = np.array([s["target_scores"][c] for c in s["choice"]])
        total += float(np.sum(w * np.exp(np.array(s["absolute_log_prob"]))))
    return total / len(samples)


def macro_f1(samples: list[Sample]) -> float:
    from sklearn.metrics import f1_score
    if not all(list(s["target_scores"].values()).count(1) == 1 for s in samples):
        raise ValueError("macro_f1 needs exactly one correct choice (score 1) per example")
    if not all(sum(s["target_scores"].values()) == 1 for s in samples):
        raise ValueError("macro_f1 does not accept soft target scores")
    y_true = [k for s in samples for k, v in s["target_scores"].items() if v == 1]
    y_pred = [chosen(s) for s in samples]
    return float(f1_score(y_true=y_true, y_pred=y_pred, average="macro"))


MULTIPLE_CHOICE = {
    "multiple_choice_grade": multiple_choice_grade,
    "calibration_multiple_choice_brier_score": brier_score,
    "expected_calibration_error": expected_calibration_error,
    "weighted_log_probabilities": weighted_log_probabilities,
    "weighted_probabilities": weighted_probabilities,
    "macro_f1": macro_f1,
}


# -- generative ---------------------------------------------------------------------------
def exact_str_match(targets: list[list[str]], responses: list[str]) -> dict[str, float]:
    hits = sum(r in t for t, r in zip(targets, responses, strict=True))
    return {"exact_str_match": hits / len(targets)}


def case_insensitive_str_match(targets: list[list[str]],
                               responses: list[str]) -> dict[str, float]:
    hits = sum(r.strip().lower() in [x.strip().lower() for x in t]
               for t, r in zip(targets, responses, strict=True))
    return {"case_insensitive_str_match": hits / len(targets)}


def within_relative_error(value: str, target: list[str], rel_error: float) -> bool:
    try:
        t = float(target[0])
        v = float(value)
    except ValueError:
        return False
    return abs(v - t) / (t if t != 0 else 1) <= rel_error


def numeric_match(targets: list[list[str]], responses: list[str],
                  rel_error: float = 0.1) -> dict[str, float]:
    good = sum(within_relative_error(r, t, rel_error)
               for t, r in zip(targets, responses, strict=True))
    return {"numeric_match_with_0_1_relative_error": good / len(targets)}


def sequence_f1(targets: list[list[str]], responses: list[str]) -> dict[str, float]:
    accs = []
    for t, r in zip(targets, responses, strict=True):
        pred, gold = r.split(" "), t[0].split(" ")
        pred = pred[: len(gold)] + ["O"] * max(0, len(gold) - len(pred))
        accs.append(100 * float(np.mean([p == g for p, g in zip(pred, gold, strict=True)])))
    return {"sequence_f1": float(np.mean(np.array(accs)))}


def bleu(targets: list[list[str]], responses: list[str]) -> dict[str, float]:
    import sacrebleu
    width = max(len(t) for t in targets)
    padded = copy.deepcopy(targets)
    if len({len(t) for t in targets}) > 1:
        for t in padded:
            t += [t[0]] * (width - len(t))
    refs = [[t[i] for t in padded] for i in range(width)]
    score = sacrebleu.corpus_bleu(responses, refs, smooth_method="exp", smooth_value=0.0,
                                  force=False, lowercase=False, tokenize="intl",
                                  use_effective_order=False)
    return {"bleu": float(score.score)}


def _rouge_corpus(targets: list[str], predictions: list[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer, scoring
    keys = ["rouge1", "rouge2", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(keys)
    agg = scoring.BootstrapAggregator()
    for pred, tgt in zip(predictions, targets, strict=True):
        agg.add_scores(scorer.score(target=tgt.replace(" . ", " .\n"),
                                    prediction=pred.replace(" . ", " .\n")))
    result = agg.aggregate()
    return {k: float(result[k].mid.fmeasure * 100) for k in keys}


def rouge(targets: list[list[str]], responses: list[str], seed: int = 0) -> dict[str, float]:
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        keys = ["rouge1", "rouge2", "rougeLsum"]
        best: dict[str, list[str]] = {k: [] for k in keys}
        for refs, resp in zip(targets, responses, strict=True):
            per_ref = [_rouge_corpus([t], [resp]) for t in refs]
            for k in keys:
                i = max(range(len(per_ref)), key=lambda j, k=k: per_ref[j][k])
                best[k].append(refs[i])
        return {k: _rouge_corpus(best[k], responses)[k] for k in keys}
    finally:
        np.random.set_state(state)


GENERATIVE = {"bleu": bleu, "exact_str_match": exact_str_match,
              "case_insensitive_str_match": case_insensitive_str_match,
              "sequence_f1": sequence_f1, "numeric_match_with_0_1_relative_error": numeric_match,
              "rouge": rouge}


def log_likelihood(log_probs_gen: list[list[float]],
                   targets: list[list[str]]) -> dict[str, float]:
    if any(len(t) > 1 for t in targets):
        return {"log_likelihood": float(np.mean([logsumexp(x) for x in log_probs_gen]))}
    n = len(log_probs_gen)
    total = sum(x[0] for x in log_probs_gen)
    per_char = sum(x[0] / len(t[0]) for x, t in zip(log_probs_gen, targets, strict=True))
    per_word = sum(x[0] / len(t[0].split()) for x, t in zip(log_probs_gen, targets,
                                                              strict=True))
    return {"log_likelihood": total / n, "log_likelihood_per_word": per_word / n,
            "log_likelihood_per_char": per_char / n}


def task_scores(samples: list[Sample], metrics: list[str], seed: int = 0) -> dict[str, float]:
    """Every metric in ``metrics`` (BIG-bench names) on one leaf task's samples."""
    out: dict[str, float] = {}
    for m in metrics:
        if m in MULTIPLE_CHOICE:
            out[m] = float(MULTIPLE_CHOICE[m](samples))
    gen = [m for m in metrics if m in GENERATIVE]
    if gen:
        responses = [s["generative_response"] for s in samples]
        targets = [s["target"] for s in samples]
        for m in gen:
            if m == "rouge":
                out.update(rouge(targets, responses, seed))
            else:
                out.update(GENERATIVE[m](targets, responses))
    if "log_likelihood" in metrics and all("log_prob_gen" in s for s in samples):
        out.update(log_likelihood([s["log_prob_gen"] for s in samples],
                                  [s["target"] for s in samples]))
    return out


def normalized(score: float, low: float, high: float) -> float:
    """BIG-bench's normalized score: 0 at ``low`` (chance), 100 at ``high``."""
    return 100.0 * (score - low) / (high - low)


def aggregate(task_name: str, leaves: list[dict[str, Any]]) -> dict[str, Any]:
    """BIG-bench's aggregate over leaf results ``{name, scores, preferred_score, low_score,
    high_score}`` (``add_aggregate_scores``): the mean of each metric, the normalized
    aggregate score, and the aggregate's preferred score and range."""
    dicts = [leaf["scores"] for leaf in leaves]
    names = sorted(set().union(*[set(d) for d in dicts]))
    agg = {m: statistics.mean(d[m] for d in dicts if m in d) for m in names}
    agg["normalized_aggregate_score"] = statistics.mean(
        (leaf["scores"][leaf["preferred_score"]] - leaf["low_score"])
        / (leaf["high_score"] - leaf["low_score"]) for leaf in leaves) * 100
    preferred = {leaf["preferred_score"] for leaf in leaves}
    if preferred == {"multiple_choice_grade"}:
        pref, low, high = ("multiple_choice_grade",
                           statistics.mean(leaf["low_score"] for leaf in leaves), 1.0)
    elif len(leaves) == 1 and leaves[0]["name"] == task_name:
        pref, low, high = (leaves[0]["preferred_score"], leaves[0]["low_score"],
                           leaves[0]["high_score"])
    else:
        pref, low, high = "normalized_aggregate_score", 0.0, 100.0
    return {"name": task_name, "scores": agg, "preferred_score": pref, "low_score": low,
            "high_score": high}


def score_range(metric: str) -> tuple[float, float]:
    return SCORE_RANGES[metric]
