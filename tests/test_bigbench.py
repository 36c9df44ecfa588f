"""BIG-bench conformance: prompts, choices, few-shot draws and post-processing.

The transcripts in ../shared/bigbench/transcripts were written by BIG-bench's own
pipeline with its DummyModel (0 shots, seed 42). The harness, run with ``lm/dummy``, must
rebuild every prompt, in order, with the same multiple-choice options in the same order
and the same dummy scores; generated responses must match wherever they do not depend on
the dummy's filler text.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import BIGBENCH
from harness_adapters.bigbench.evaluate import Evaluate, early_stop, postprocess
from harness_adapters.bigbench.task import (
    DEFAULT_REGEX,
    format_example,
    load_task,
    nshot_samples,
)
from harness_adapters.lm.dummy import DummyLM

from harness import HarnessError, RunContext

TRANSCRIPTS = sorted(p.stem for p in (BIGBENCH / "transcripts").glob("*.md"))
SEP = "\n\n### Prompt:\n"
RESPONSE = "\n\n### Dummy model response"
# BIG-bench's dummy appends chunks of a fixed text to its numbered answers; a response is
# compared only when it is the same after every one of these (adversarial) fillers
FILLERS = ["alpha filler. " * 30, "\n", "4.\n", "x y z", ". 12\n", "\n\n7"]


def entries(text: str) -> list[tuple[str, str]]:
    out = []
    for chunk in text.split(SEP)[1:]:
        prompt, response = chunk.split(RESPONSE, 1)
        out.append((prompt, response.rstrip("\n")))
    return out


def run_dummy(task_dir: Path, filler: str, tmp_path: Path) -> DummyLM:
    task = load_task(task_dir)
    lm = DummyLM(filler=filler)
    Evaluate(Evaluate.Params(shots=0, log_likelihood_targets=False)).run(
        RunContext(seed=0, work_dir=tmp_path / filler[:3]), task, lm)
    return lm


@pytest.mark.realdata
@pytest.mark.parametrize("name", TRANSCRIPTS or ["(no transcripts)"])
def test_transcript_conformance(name: str, bigbench_dir: Path, tmp_path: Path) -> None:
    text = (bigbench_dir / "transcripts" / f"{name}.md").read_text("utf-8")
    header = len(text.split(SEP, 1)[0])
    reference = entries(text)
    task_dir = bigbench_dir / "tasks" / name
    runs = [entries(run_dummy(task_dir, FILLERS[0], tmp_path).transcript(1e12))]
    if any("| log probability |" not in r for _, r in runs[0][: len(reference)]):
        runs += [entries(run_dummy(task_dir, filler, tmp_path).transcript(1e12))
                 for filler in FILLERS[1:]]
    assert len(reference) > 0 and len(runs[0]) >= len(reference)
    compared = 0
    for i, (ref_p, ref_r) in enumerate(reference):
        prompt, response = runs[0][i]
        assert prompt == ref_p, f"{name}: prompt {i} differs"
        if "| log probability | output string |" in response:
            assert response == ref_r, f"{name}: multiple-choice options or scores {i} differ"
            compared += 1
        elif all(run[i][1] == response for run in runs):  # independent of the filler text
            assert response == ref_r, f"{name}: post-processed response {i} differs"
            compared += 1
    if compared == len(reference):  # same entry lengths: the 50,000-character cut agrees
        lm = run_dummy(task_dir, "alpha filler. " * 30, tmp_path)
        assert len(entries(lm.transcript(5e4 - header))) == len(reference)


def test_choice_and_shot_draws_use_bigbench_random_semantics() -> None:
    """Index draws consume numpy's legacy generator as BIG-bench's draws from object
    arrays do, for several shot counts and query counts. (The prompts themselves, and
    BIG-bench's call site, are checked against the sdist's own code in
    test_bigbench_reference.py.)"""
    raw = [{"input": f"q{i}", "target": [f"a{i}", f"b{i}"] if i % 3 else f"a{i}"}
           for i in range(12)]
    samples = [format_example(copy.deepcopy(x), "\nQ: ", "\nA: ", "", 42) for x in raw]

    def reference(samples: list[dict], shots: int, seed: int, sep: str,
                  max_examples: int | None) -> list[dict]:
        rng = np.random.RandomState(seed=seed)
        samples = copy.deepcopy(samples)
        if shots == 0:
            if max_examples and max_examples < len(samples):
                return rng.choice(samples, max_examples, replace=False).tolist()
            return samples
        queries = rng.choice(samples, max_examples, replace=False) if max_examples \
            else samples
        out = []
        for s in queries:
            q = copy.deepcopy(s)
            pool = [x for x in samples if x != s]
            picked = list(rng.choice(pool, shots, replace=False))
            ctx = sep.join(e["input"] + rng.choice(e["target"]) for e in picked)
            q["input"] = ctx + sep + q["input"]
            out.append(q)
        return out

    for shots in (0, 1, 3, 5):
        for max_examples in (None, 4, 11):
            for seed in (42, 7):
                got = nshot_samples(samples, shots, seed, "\n\n", max_examples)
                want = reference(samples, shots, seed, "\n\n", max_examples)
                assert [g["input"] for g in got] == [w["input"] for w in want]


def test_appended_choices_are_a_seeded_permutation_of_sorted_choices() -> None:
    ex = {"input": "Pick", "target_scores": {"c": 0, "a": 1, "d": 0, "b": 0}}
    out = format_example(copy.deepcopy(ex), "", "\nA:", " | ", 42)
    perm = np.random.RandomState(42).permutation(["a", "b", "c", "d"])
    assert out["input"] == "Pick | " + " | ".join(perm) + "\nA:"
    assert out["choice"] == ["c", "a", "d", "b"]  # scoring order = the file's order
    assert out["target"] == ["a"]
    tie = format_example({"input": "x", "target_scores": {"p": 1, "q": 1, "r": 0}}, "", "",
                         "", 42, append_choices=False)
    assert tie["target"] == ["p"]  # the first choice with the highest score
    with pytest.raises(HarnessError, match="no correct choice"):
        format_example({"input": "x", "target_scores": {"p": 0, "q": 0}}, "", "", "", 42)


def test_subtasks_max_examples_and_selection(bigbench_dir: Path) -> None:
    task = load_task(bigbench_dir / "tasks" / "simple_arithmetic_json_subtasks",
                     max_examples=7)
    leaves = task.leaves()
    assert [t.name for t in leaves] == ["simple_arithmetic_json_subtasks:one_digit",
                                        "simple_arithmetic_json_subtasks:three_digit",
                                        "simple_arithmetic_json_subtasks:two_digit"]
    assert [t.num_examples for t in leaves] == [2, 2, 2]  # floor(7 / 3) each
    one = load_task(bigbench_dir / "tasks" / "simple_arithmetic_json_subtasks",
                    only=["two_digit"], max_examples=4)
    assert [t.name for t in one.leaves()] == ["simple_arithmetic_json_subtasks:two_digit"]
    assert one.leaves()[0].num_examples == 4
    with pytest.raises(HarnessError, match="no subtask 'four_digit'"):
        load_task(bigbench_dir / "tasks" / "simple_arithmetic_json_subtasks",
                  only=["four_digit"])
    with pytest.raises(HarnessError, match="must be >= the number of subtasks"):
        load_task(bigbench_dir / "tasks" / "conlang_translation", max_examples=5)


def test_intent_recognition_prompt_and_chance(bigbench_dir: Path) -> None:
    task = load_task(bigbench_dir / "tasks" / "intent_recognition")
    assert len(task.examples) == 693
    assert task.low_score == pytest.approx(1 / 7)  # chance, not the file's low_score 0.0
    prompt = task.prompts(task.samples(3))[0]
    assert prompt.startswith("Predict the intent of the utterance.")
    assert prompt.count("\nIntent: ") == 4 and prompt.endswith("\nIntent: ")
    assert prompt.count("\n\nUtterance: ") == 4  # 3 shots joined by the task's separator


# -- post-processing ----------------------------------------------------------------------
def test_postprocess_follows_bigbench() -> None:
    assert postprocess("  hello world. more", 500, None, DEFAULT_REGEX) == "  hello world"
    assert postprocess("\n42 and 7", 500, None, r"[-+]?\d+") == "42"
    assert postprocess("abc\ndef\n", 500, "\n", None) == "abc\n"
    assert postprocess("\nabc\n", 500, "\n", None) == "\nabc\n"  # stop at 0: no cut
    assert postprocess("no digits", 500, None, r"\d+") == ""
    assert postprocess("x = 17.\nmore", 500, "\n", r"([-+]?\d+)[.]{0,1}$") == "17"
    assert postprocess("x = 17. \nmore", 500, "\n", r"([-+]?\d+)[.]{0,1}$") == ""
    assert postprocess("abcdef", 3, None, None) == "abc"
    with pytest.raises(HarnessError, match="several groups"):
        postprocess("ab", 10, None, r"(a)(b)")


def test_early_stop_never_changes_the_answer() -> None:
    rng = np.random.default_rng(0)
    alphabet = list("ab1 .\n?-")
    for regex, stop in [(DEFAULT_REGEX, None), (None, "\n"), (r"[-+]?\d+", None),
                        (r"\d+", "."), (DEFAULT_REGEX, ".")]:
        until = early_stop(40, stop, regex)
        for _ in range(300):
            text = "".join(rng.choice(alphabet, size=40))
            for cut in range(1, 41):
                if until(text[:cut]):
                    if regex == DEFAULT_REGEX or regex is None or stop:
                        assert postprocess(text[:cut], 40, stop, regex) == postprocess(
                            text, 40, stop, regex)
                    break


def test_dummy_scores_give_bigbench_metrics(bigbench_dir: Path, tmp_path: Path) -> None:
    from harness_adapters.bigbench.metrics import BigBenchMetrics

    from harness import CellResult
    task = load_task(bigbench_dir / "tasks" / "intent_recognition")
    out = Evaluate(Evaluate.Params(shots=0)).run(RunContext(seed=0, work_dir=tmp_path),
                                                 task, DummyLM())
    scores = BigBenchMetrics().compute(RunContext(seed=0), CellResult(task, None, out))
    # the dummy's best score is always the second choice: book_restaurant (92 of 693)
    assert scores["multiple_choice_grade"] == pytest.approx(92 / 693)
    assert scores["low_score"] == pytest.approx(1 / 7)
    assert scores["normalized_preferred_score"] == pytest.approx(
        100 * (92 / 693 - 1 / 7) / (1 - 1 / 7))
    assert json.loads(json.dumps(out["leaves"]))[0]["preferred_score"] == \
        "multiple_choice_grade"


def test_shot_ablations_keep_the_draws() -> None:
    """``pool`` (shots from another task) and ``leak_query`` change which examples are
    shown, never the random draws: the queries' order is the same as the clean run's."""
    raw = [{"input": f"q{i}", "target": f"a{i}"} for i in range(10)]
    samples = [format_example(copy.deepcopy(x), "\nQ: ", "\nA: ", "", 42) for x in raw]
    other = [format_example({"input": f"z{i}", "target": f"y{i}"}, "\nU: ", "\nI: ", "", 42)
             for i in range(6)]
    clean = nshot_samples(samples, 2, 42, "\n", 10)
    foreign = nshot_samples(samples, 2, 42, "\n", 10, pool=other)
    leaked = nshot_samples(samples, 2, 42, "\n", 10, leak_query=True)
    assert [s["query_index"] for s in clean] == [s["query_index"] for s in foreign] == \
        [s["query_index"] for s in leaked]
    assert sorted(s["query_index"] for s in clean) == list(range(10))
    for c, f, k in zip(clean, foreign, leaked, strict=True):
        i = c["query_index"]
        query = f"\nQ: q{i}\nA: "
        assert c["input"].endswith(query) and f["input"].endswith(query)
        assert f["input"].count("\nU: z") == 2 and "\nQ: " not in f["input"][:-len(query)]
        # the shot right before the query is the query itself, answered
        assert k["input"].endswith(f"\nQ: q{i}\nA: a{i}\n" + query)


@pytest.mark.realdata
def test_baseline_shots_and_foreign_shots_through_evaluate(bigbench_dir: Path,
                                                           tmp_path: Path) -> None:
    task = load_task(bigbench_dir / "tasks" / "simple_arithmetic_json_multiple_choice")
    task.origin = str(bigbench_dir / "tasks" / "simple_arithmetic_json_multiple_choice")
    ctx = RunContext(seed=0, work_dir=tmp_path)
    zero = Evaluate(Evaluate.Params(shots=0)).run(ctx, task, DummyLM())["examples"]
    two = Evaluate(Evaluate.Params(shots=2, baseline_shots=0)).run(
        ctx, task, DummyLM())["examples"]
    by_example = {r["example"]: r["correct"] for r in zero}
    assert sorted(by_example) == sorted(r["example"] for r in two)
    assert all(r["baseline_correct"] == by_example[r["example"]] for r in two)
    foreign = Evaluate(Evaluate.Params(shots=2, shots_from="intent_recognition")).run(
        ctx, task, DummyLM())["examples"]
    assert [r["example"] for r in foreign] == [r["example"] for r in two]
    assert all(r["prompt"].count("\nIntent: ") == 2 for r in foreign)
    with pytest.raises(HarnessError, match="itself"):
        Evaluate(Evaluate.Params(shots=2, shots_from="simple_arithmetic_json_multiple_choice")
                 ).run(ctx, task, DummyLM())


@pytest.mark.realdata
def test_answer_key_leak_scores_every_query_right(bigbench_dir: Path, tmp_path: Path) -> None:
    task = load_task(bigbench_dir / "tasks" / "intent_recognition", max_examples=30)
    rows = Evaluate(Evaluate.Params(shots=3, leak_answer_key=True)).run(
        RunContext(seed=0, work_dir=tmp_path), task, DummyLM())["examples"]
    assert len(rows) == 30 and all(r["correct"] == 1.0 for r in rows)
