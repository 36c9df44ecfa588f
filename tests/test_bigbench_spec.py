"""specs/bigbench.yaml through the real CLI: the claims hold, and fail when the choices
are scored without their context; the report sets the model beside human raters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SPECS, load_summary, run_harness

ONLY_INTENT_3SHOT = "cells={only: [{dataset: intent_recognition, method: three_shot}]}"


def env_for(bigbench_dir: Path) -> dict[str, str]:
    return {"HARNESS_BIGBENCH_TASKS": str(bigbench_dir / "tasks")}


def claims_by_text(out: Path) -> dict[str, dict]:
    return {claim["text"].split(":")[0]: claim for claim in load_summary(out)["claims"]}


@pytest.mark.slow
@pytest.mark.realdata
def test_intent_claims_hold_and_fail_without_context(bigbench_dir: Path, tmp_path: Path
                                                     ) -> None:
    # a 120-example BIG-bench subset (max_examples) of intent_recognition at 3 shots
    common = ["--set", ONLY_INTENT_3SHOT, "--set",
              "datasets.intent_recognition.max_examples=120"]
    out = tmp_path / "ok"
    res = run_harness("run", str(SPECS / "bigbench.yaml"), "--out", str(out), *common,
                      env=env_for(bigbench_dir))
    assert res.returncode == 0, res
    claims = claims_by_text(out)
    assert len(claims) == 3 and all(c["passed"] for c in claims.values()), claims
    metrics = load_summary(out)["cells"][0]["metrics"]
    assert metrics["multiple_choice_grade"] > 0.3
    assert 0.176 < metrics["multiple_choice_grade_ci_low"] < metrics["multiple_choice_grade"]
    assert metrics["shot_gain_ci_low"] > 0.05  # 3 shots beat 0 shots on the same queries
    assert metrics["baseline_multiple_choice_grade"] < 0.25
    assert metrics["human_average_multiple_choice_grade"] == pytest.approx(0.838, abs=1e-3)

    broken = tmp_path / "ablated"
    res = run_harness("run", str(SPECS / "bigbench.yaml"), "--out", str(broken), *common,
                      "--set", "methods.three_shot.ablate_context=true",
                      env=env_for(bigbench_dir))
    assert res.returncode == 1, res
    claims = claims_by_text(broken)
    metrics = load_summary(broken)["cells"][0]["metrics"]
    assert not claims["intent_recognition, 3 shots"]["passed"]
    assert not claims["intent_recognition"]["passed"]
    assert metrics["multiple_choice_grade_ci_low"] < 0.176
    assert metrics["shot_gain"] == 0.0  # without context, shots cannot change a score
    assert "FAIL" in res.output


@pytest.mark.slow
@pytest.mark.realdata
def test_dummy_run_report_and_verify(bigbench_dir: Path, tmp_path: Path, write_spec) -> None:
    spec = write_spec(f"""\
name: bb-dummy
seeds: [0]
datasets:
  intent: {{use: bigbench/task, task: intent_recognition, tasks_dir: {bigbench_dir / 'tasks'}}}
  arith: {{use: bigbench/task, task: simple_arithmetic_json_subtasks,
          tasks_dir: {bigbench_dir / 'tasks'}}}
models:
  dummy: lm/dummy
methods:
  zero: {{use: bigbench/evaluate, shots: 0}}
metrics: [bigbench/metrics, bigbench/bootstrap]
""")
    out = tmp_path / "out"
    res = run_harness("run", str(spec), "--out", str(out))
    assert res.returncode == 0, res
    cells = {c["axes"]["dataset"]: c for c in load_summary(out)["cells"]}
    assert cells["intent"]["metrics"]["multiple_choice_grade"] == pytest.approx(92 / 693)
    # the dummy answers "Model queries ..." -> the digit regex keeps the query number
    arith = cells["arith"]["metrics"]
    assert arith["exact_str_match"] == 0.0 and "one_digit/exact_str_match" in arith
    rows = [json.loads(line) for line in
            (out / "cells" / cells["intent"]["id"] / "examples.jsonl").open()]
    assert len(rows) == 693 and {"prompt", "choices", "target", "output",
                                 "scores"} <= set(rows[0])
    assert (out / "cells" / cells["intent"]["id"] / "artifacts" / "transcript.md").is_file()

    res = run_harness("report", str(out))
    assert res.returncode == 0, res
    page = (out / "report.html").read_text()
    assert "BIG-bench: model vs human raters and chance" in page
    assert "83.8" in page and "100.0" in page  # intent_recognition: average and expert
    assert "14.3" in page and "13.3" in page  # chance 1/7 and the dummy's 92/693

    res = run_harness("verify", str(out))
    assert res.returncode == 0, res


def test_spec_names_a_control_for_every_claim() -> None:
    from harness.controls import unnamed_claims
    from harness.registry import get_registry
    from harness.spec import load_spec
    spec = load_spec(SPECS / "bigbench.yaml", get_registry())
    assert set(spec.claim_ids) == {"intent-above-majority", "intent-shots-help",
                                   "below-human-average"}
    assert unnamed_claims(spec) == []
    three = {name: ctl.points[0].methods["three_shot"].params
             for name, ctl in spec.controls.items()}
    assert three["no-context"].ablate_context
    assert three["foreign-shots"].shots_from == "emoji_movie"
    assert three["answer-key"].leak_answer_key
    assert spec.points[0].methods["three_shot"].params.baseline_shots == 0
