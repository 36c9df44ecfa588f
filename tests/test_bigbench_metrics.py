"""BIG-bench metrics against hand-computed values (tie-break and score-range rules too)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from harness_adapters.bigbench import scoring
from harness_adapters.bigbench.metrics import bootstrap_interval


def mc(scores: dict[str, float], probs: list[float]) -> dict:
    return {"choice": list(scores), "target_scores": scores,
            "log_prob": [math.log(p) for p in probs],
            "absolute_log_prob": [math.log(p) for p in probs]}


# -- argmax tie-break ----------------------------------------------------------------------
def test_argmax_breaks_ties_by_sha256_of_the_float64_bytes() -> None:
    # [-1, -3, -1]: ties at 0 and 2; sha256(bytes) ends in ...87 (odd) -> the 2nd tie, 2
    arr = np.array([-1.0, -3.0, -1.0])
    assert hashlib.sha256(arr.tobytes()).hexdigest().endswith("fc8e5a87")
    assert scoring.argmax([-1.0, -3.0, -1.0]) == 2  # not the first maximum
    assert scoring.argmax([-2.0, -2.0, -5.0]) == 0  # digest ...a5d15b4e, even -> first tie
    assert scoring.argmax([-1.5, -1.5, -1.5]) == 1
    assert scoring.argmax([0.5, 0.5, 0.5]) == 2
    assert scoring.argmax([-3.0, -0.5, -2.0]) == 1  # no tie: the plain argmax


def test_multiple_choice_grade_uses_target_scores_of_the_pick() -> None:
    a = mc({"x": 1.0, "y": 0.5, "z": 0.0}, [0.2, 0.7, 0.1])  # picks y -> 0.5
    b = mc({"x": 0.0, "y": 1.0}, [0.9, 0.1])  # picks x -> 0
    c = {**mc({"p": 1.0, "q": 0.0, "r": 0.0}, [0.5, 0.25, 0.25]),
         "log_prob": [-1.0, -3.0, -1.0]}  # tie p/r broken towards r -> 0
    assert scoring.multiple_choice_grade([a, b]) == pytest.approx(0.25)
    assert scoring.multiple_choice_grade([c]) == 0.0


# -- calibration ---------------------------------------------------------------------------
def test_brier_score_by_hand() -> None:
    s = mc({"a": 1, "b": 0, "c": 0}, [0.5, 0.25, 0.25])
    # (0.5-1)^2 + 0.25^2 + 0.25^2 = 0.375 over 3 (example, choice) pairs
    assert scoring.brier_score([s]) == pytest.approx(0.125)
    soft = mc({"a": 1, "b": 1}, [0.75, 0.25])  # targets 0.5/0.5
    # a: .5*(.75-1)^2 + .5*.75^2 = .3125; b: .5*(.25-1)^2 + .5*.25^2 = .3125
    assert scoring.brier_score([soft]) == pytest.approx(0.3125)


def test_expected_calibration_error_buckets() -> None:
    right = mc({"a": 1, "b": 0}, [0.6, 0.4])  # confidence 0.6, correct
    wrong = mc({"a": 1, "b": 0}, [0.35, 0.65])  # confidence 0.65, wrong
    far = mc({"a": 1, "b": 0}, [0.3, 0.7])  # confidence 0.7, wrong
    # 0.6 and 0.65 share bucket [9/15, 10/15): |0.5 - 0.625| = 0.125
    assert scoring.expected_calibration_error([right, wrong]) == pytest.approx(0.125)
    # 0.7 falls in the next bucket: 0.5*|1-0.6| + 0.5*|0-0.7| = 0.55
    assert scoring.expected_calibration_error([right, far]) == pytest.approx(0.55)
    # a confidence on a bucket edge (0.2 = 3/15) belongs to the bucket above it, here
    # with 0.25: |0.5 - 0.225| = 0.275 (0.525 if the edge went to the bucket below)
    scores = {k: int(k == "a") for k in "abcde"}
    edge = mc(scores, [0.2] * 5)  # correct (first maximum)
    above = mc(scores, [0.1875] * 4 + [0.25])  # wrong
    assert scoring.expected_calibration_error([edge, above]) == pytest.approx(0.275)
    # a confidence of 1.0 stays in the last bucket
    sure = mc({"a": 1, "b": 0}, [1.0 - 1e-12, 1e-12])
    assert scoring.expected_calibration_error([sure]) == pytest.approx(0.0, abs=1e-9)


def test_weighted_probabilities() -> None:
    s = mc({"a": 1, "b": 0.5}, [0.5, 0.25])
    assert scoring.weighted_probabilities([s]) == pytest.approx(0.625)
    assert scoring.weighted_log_probabilities([s]) == pytest.approx(
        math.log(0.5) + 0.5 * math.log(0.25))


def test_macro_f1_by_hand() -> None:
    samples = [mc({"a": 1, "b": 0}, [0.9, 0.1]), mc({"a": 1, "b": 0}, [0.1, 0.9]),
               mc({"a": 0, "b": 1}, [0.1, 0.9])]
    # a: tp 1, fn 1 -> 2/3; b: tp 1, fp 1 -> 2/3
    assert scoring.macro_f1(samples) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="exactly one correct"):
        scoring.macro_f1([mc({"a": 1, "b": 1}, [0.5, 0.5])])


# -- generative ----------------------------------------------------------------------------
def test_string_matches() -> None:
    t, r = [["a", "b"], ["c"]], ["b", "C"]
    assert scoring.exact_str_match(t, r) == {"exact_str_match": 0.5}
    assert scoring.case_insensitive_str_match(t, [" B ", "c "]) == {
        "case_insensitive_str_match": 1.0}


def test_numeric_match_relative_error() -> None:
    t = [["100"], ["100"], ["0"], ["5"]]
    r = ["109", "111", "0.05", "five"]
    # 9% ok, 11% not, absolute error when the target is 0, non-numbers fail
    assert scoring.numeric_match(t, r) == {"numeric_match_with_0_1_relative_error": 0.5}


def test_sequence_f1_pads_and_trims() -> None:
    t = [["B-PER O O"], ["B-PER O O"]]
    r = ["B-PER O", "X O O extra"]  # padded with O -> 3/3; trimmed -> 2/3
    assert scoring.sequence_f1(t, r)["sequence_f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_log_likelihood_normalizations() -> None:
    out = scoring.log_likelihood([[-2.0], [-4.0]], [["ab cd"], ["x"]])
    assert out == pytest.approx({"log_likelihood": -3.0,
                                 "log_likelihood_per_word": (-1.0 - 4.0) / 2,
                                 "log_likelihood_per_char": (-0.4 - 4.0) / 2})
    multi = scoring.log_likelihood([[-1.0, -1.0]], [["a", "b"]])
    assert multi == pytest.approx({"log_likelihood": -1.0 + math.log(2)})


def test_bleu_and_rouge() -> None:
    assert scoring.bleu([["the cat sat on the mat"]], ["the cat sat on the mat"])[
        "bleu"] == pytest.approx(100.0)
    # unigram P = 1, R = 2/3 -> F = 0.8; bigram P = 1, R = 1/2 -> F = 2/3
    got = scoring.rouge([["the cat sat"]], ["the cat"])
    assert got["rouge1"] == pytest.approx(80.0) and got["rouge2"] == pytest.approx(200 / 3)
    # the best reference is chosen per example
    assert scoring.rouge([["dog", "the cat sat"]], ["the cat sat"])["rouge1"] == \
        pytest.approx(100.0)
    # several references of unequal count are padded with the first one for BLEU
    assert scoring.bleu([["a b c d", "x"], ["e f g h"]], ["a b c d", "e f g h"])[
        "bleu"] == pytest.approx(100.0)


def test_task_scores_adds_nothing_undeclared() -> None:
    s = {**mc({"a": 1, "b": 0}, [0.8, 0.2]), "target": ["a"], "generative_response": "a"}
    out = scoring.task_scores([s], ["multiple_choice_grade", "exact_str_match"])
    assert out == {"multiple_choice_grade": 1.0, "exact_str_match": 1.0}


# -- normalized scores ---------------------------------------------------------------------
def test_normalized_score_and_aggregate_rules() -> None:
    assert scoring.normalized(0.5, 0.25, 1.0) == pytest.approx(100 / 3)
    assert scoring.normalized(0.1, 0.25, 1.0) < 0  # below chance is negative
    mcq = {"name": "t:a", "scores": {"multiple_choice_grade": 0.5}, "low_score": 0.25,
           "high_score": 1.0, "preferred_score": "multiple_choice_grade"}
    mcq2 = {"name": "t:b", "scores": {"multiple_choice_grade": 0.9}, "low_score": 0.5,
            "high_score": 1.0, "preferred_score": "multiple_choice_grade"}
    gen = {"name": "t:c", "scores": {"exact_str_match": 0.2, "bleu": 30.0}, "low_score": 0.0,
           "high_score": 1.0, "preferred_score": "exact_str_match"}
    # every subtask prefers the grade: the aggregate keeps it, low = mean of the lows
    both = scoring.aggregate("t", [mcq, mcq2])
    assert both["preferred_score"] == "multiple_choice_grade"
    assert (both["low_score"], both["high_score"]) == (0.375, 1.0)
    assert both["scores"]["multiple_choice_grade"] == pytest.approx(0.7)
    assert both["scores"]["normalized_aggregate_score"] == pytest.approx(
        100 * ((0.25 / 0.75) + (0.4 / 0.5)) / 2)
    # mixed preferences: the normalized aggregate on 0-100 becomes the preferred score
    mixed = scoring.aggregate("t", [mcq, gen])
    assert (mixed["preferred_score"], mixed["low_score"], mixed["high_score"]) == (
        "normalized_aggregate_score", 0.0, 100.0)
    assert mixed["scores"]["normalized_aggregate_score"] == pytest.approx(
        100 * (1 / 3 + 0.2) / 2)
    assert mixed["scores"]["bleu"] == 30.0  # a metric only some subtasks have: their mean
    # a task without subtasks keeps its own preferred score and range
    alone = scoring.aggregate("t:c", [gen])
    assert (alone["preferred_score"], alone["low_score"]) == ("exact_str_match", 0.0)
    assert scoring.score_range("bleu") == (0.0, 100.0)
    assert scoring.score_range("log_likelihood") == (-10.0, 0.0)


# -- bootstrap -----------------------------------------------------------------------------
def test_bootstrap_interval() -> None:
    rng = np.random.default_rng(0)
    est, lo, hi = bootstrap_interval({"t": np.ones(50)}, rng, 500, 0.95)
    assert (est, lo, hi) == (1.0, 1.0, 1.0)
    data = {"t": np.array([1.0] * 200 + [0.0] * 200)}
    est, lo, hi = bootstrap_interval(data, np.random.default_rng(1), 4000, 0.95)
    half = 1.96 * math.sqrt(0.25 / 400)
    assert est == 0.5 and lo == pytest.approx(0.5 - half, abs=0.01)
    assert hi == pytest.approx(0.5 + half, abs=0.01)
    again = bootstrap_interval(data, np.random.default_rng(1), 4000, 0.95)
    assert again == (est, lo, hi)
    # subtasks: mean of the subtask means, resampled within each subtask
    two = {"a": np.ones(10), "b": np.zeros(30)}
    assert bootstrap_interval(two, np.random.default_rng(0), 200, 0.9) == (0.5, 0.5, 0.5)


# -- paired shot gain and human raters ------------------------------------------------------
def test_shot_gain_is_paired_per_example() -> None:
    from harness_adapters.bigbench.metrics import ShotGain

    from harness import CellResult, RunContext
    # 0-shot right on 10 of 40, 3 shots right on those 10 and 10 more: gain 0.25 with no
    # example getting worse, so the paired interval stays above 0
    rows = [{"task": "t", "correct": float(i < 20), "baseline_correct": float(i < 10)}
            for i in range(40)]
    out = ShotGain().compute(RunContext(seed=0),
                             CellResult(None, None, {"examples": rows, "leaves": []}))
    assert out["shot_gain"] == pytest.approx(0.25)
    assert out["baseline_multiple_choice_grade"] == pytest.approx(0.25)
    assert 0 < out["shot_gain_ci_low"] < 0.25 < out["shot_gain_ci_high"]
    same = [dict(r, correct=r["baseline_correct"]) for r in rows]  # no gain at all
    out = ShotGain().compute(RunContext(seed=0),
                             CellResult(None, None, {"examples": same, "leaves": []}))
    assert out["shot_gain"] == out["shot_gain_ci_low"] == out["shot_gain_ci_high"] == 0
    # no baseline recorded (0-shot cells, generative tasks): nothing to report
    assert ShotGain().compute(RunContext(seed=0), CellResult(None, None, {
        "examples": [{"task": "t", "correct": 1.0}], "leaves": []})) == {}


def test_human_scores_on_the_model_scale() -> None:
    from harness_adapters.bigbench.metrics import human_scores
    human = {"average": {"multiple_choice_grade": 83.8, "normalized_aggregate_score": 81.6,
                         "bleu": 40.0, "calibration_multiple_choice_brier_score": 0.05},
             "expert": {"multiple_choice_grade": 100.0}}
    out = human_scores(human, {"multiple_choice_grade": 0.5, "normalized_aggregate_score": 40,
                               "calibration_multiple_choice_brier_score": 0.1},
                       "multiple_choice_grade")
    assert out == pytest.approx({"human_average_multiple_choice_grade": 0.838,
                                 "human_average_gap": 0.338,
                                 "human_expert_multiple_choice_grade": 1.0,
                                 "human_expert_gap": 0.5})
    assert human_scores({}, {"bleu": 3.0}, "bleu") == {}
    assert human_scores(human, {"bleu": 3.0}, "bleu") == {"human_average_bleu": 40.0,
                                                           "human_average_gap": 37.0}
