"""Controls, claim ids, xfail, report-only rows and two-metric claims, through the real CLI
(a small iris spec) and on hand-made cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_summary, run_harness

from harness.claims import claims_ok, evaluate_claims, evaluate_report
from harness.controls import falsification, outcome
from harness.specmodel import Claim, ReportItem

SPEC = """\
name: ctl
seeds: [0]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [16]}
methods:
  train: {use: torch/train-classifier, steps: 80, optimizer: {use: torch/adam, lr: 0.02}}
metrics: [accuracy, cross-entropy]
expect:
  - {id: learns, metric: accuracy, at_least: 0.8}
report:
  - {metric: cross_entropy, text: "test cross-entropy"}
controls:
  - name: untrained
    text: "one optimizer step: the model never learns"
    set: {methods.train.steps: 1}
    must_fail: [learns]
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_with_controls_prints_the_table_and_reuses_control_cells(tmp_path: Path) -> None:
    spec, out = write(tmp_path, SPEC), tmp_path / "out"
    res = run_harness("run", str(spec), "--out", str(out), "--controls")
    assert res.returncode == 0, res
    assert "falsified by untrained" in res.stdout
    assert "test cross-entropy" in res.stdout  # the report-only row is shown
    summary = load_summary(out)
    table = summary["controls"]
    assert table["ok"] and table["problems"] == []
    assert table["controls"][0]["claims"] == {"learns": "FAIL"}
    assert table["verdicts"]["learns"]["falsified_by"] == ["untrained"]
    assert len(summary["claims"]) == 1  # report rows are never claims
    control = load_summary(out / "controls" / "untrained")
    assert control["control"] == "untrained"
    assert control["cells"][0]["metrics"]["accuracy"] < 0.8
    again = run_harness("run", str(spec), "--out", str(out), "--controls")
    assert again.returncode == 0, again
    assert "0 cell(s) to run, 1 already done" in again.stderr
    assert again.stderr.count("already done") == 2  # the spec and its control
    shown = run_harness("controls", str(out))
    assert shown.returncode == 0 and "falsified by untrained" in shown.stdout


def test_a_control_that_breaks_nothing_fails_the_run(tmp_path: Path) -> None:
    text = SPEC + """\
  - name: harmless
    text: "a slightly different learning rate is not a broken method"
    set: {methods.train.optimizer.lr: 0.021}
    must_fail: [learns]
"""
    out = tmp_path / "out"
    res = run_harness("run", str(write(tmp_path, text)), "--out", str(out), "--controls")
    assert res.returncode == 1, res
    table = load_summary(out)["controls"]
    assert not table["ok"]
    assert "control 'harmless': claim 'learns' must fail but is PASS" in table["problems"]
    assert table["verdicts"]["learns"]["falsified_by"] == ["untrained"]


def test_a_claim_no_control_falsifies_fails_the_run_and_validate_strict(tmp_path: Path) -> None:
    text = SPEC.replace("  - {id: learns, metric: accuracy, at_least: 0.8}\n",
                        "  - {id: learns, metric: accuracy, at_least: 0.8}\n"
                        "  - {id: loose, metric: accuracy, at_least: 0.0}\n")
    spec, out = write(tmp_path, text), tmp_path / "out"
    res = run_harness("validate", str(spec))
    assert res.returncode == 0 and "claim 'loose' is named by no control" in res.stderr
    assert run_harness("validate", "--strict", str(spec)).returncode == 1
    run = run_harness("run", str(spec), "--out", str(out), "--controls")
    assert run.returncode == 1, run
    assert "NOT FALSIFIED" in run.stdout
    assert load_summary(out)["controls"]["verdicts"]["loose"]["falsified_by"] == []


@pytest.mark.parametrize("bad, message, line", [
    ("    must_fail: [lerns]\n", "unknown claim id 'lerns'", 18),
    ("    set: {methods.train.stepz: 1}\n", "unknown key 'stepz'", 17),
    ("    set: {methods.train.steps: many}\n", "steps", 17),
])
def test_bad_controls_are_located_errors(tmp_path: Path, bad: str, message: str,
                                         line: int) -> None:
    key = bad.split(":")[0].strip()
    lines = [ln for ln in SPEC.splitlines(keepends=True)]
    text = "".join(bad if ln.strip().startswith(key + ":") and i > 14 else ln
                   for i, ln in enumerate(lines))
    res = run_harness("validate", str(write(tmp_path, text)))
    assert res.returncode == 2, res
    assert message in res.stderr
    assert f"spec.yaml:{line}" in res.stderr
    assert "Traceback" not in res.output


def test_duplicate_claim_ids_and_a_hint_for_a_close_id(tmp_path: Path) -> None:
    text = SPEC.replace("  - {id: learns, metric: accuracy, at_least: 0.8}\n",
                        "  - {id: learns, metric: accuracy, at_least: 0.8}\n"
                        "  - {id: learns, metric: accuracy, at_most: 1.0}\n")
    res = run_harness("validate", str(write(tmp_path, text)))
    assert res.returncode == 2 and "duplicate claim id 'learns'" in res.stderr
    res = run_harness("validate", str(write(tmp_path, SPEC.replace("[learns]", "[lerns]"))))
    assert "did you mean 'learns'?" in res.stderr


def test_derived_ids_are_stable_and_depend_on_content() -> None:
    a = Claim(metric="accuracy", at_least=0.8)
    assert a.derived_id() == Claim(metric="accuracy", at_least=0.8, text="x").derived_id()
    assert a.derived_id().startswith("accuracy-")
    assert a.derived_id() != Claim(metric="accuracy", at_least=0.9).derived_id()


def test_contradictory_bounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="can never pass"):
        Claim(metric="a", at_least=0.9, at_most=0.1)
    with pytest.raises(ValueError, match="finite"):
        Claim(metric="a", at_least=float("nan"))
    Claim(metric="a", at_least=0.5, at_most=0.5)  # an exact value is fine


def cells(values: dict[str, list[float]], **more: list[float]) -> list[dict]:
    out = []
    for group, vals in values.items():
        for seed, v in enumerate(vals):
            metrics = {"acc": v, **{k: m[seed] for k, m in more.items()}}
            out.append({"group": group, "spec_seed": seed, "status": "ok",
                        "axes": {"dataset": "d", "model": None, "method": group,
                                 "point": None}, "metrics": metrics})
    return out


AXES = {"dataset": {"d"}, "model": set(), "method": {"a", "b"}, "point": set()}


def test_xfail_is_strict() -> None:
    data = cells({"a": [0.5, 0.6]})
    failing = Claim(id="c", metric="acc", at_least=0.9, xfail="does not hold at this scale")
    passing = Claim(id="c", metric="acc", at_least=0.1, xfail="does not hold at this scale")
    (xf,) = evaluate_claims([failing], data, AXES)
    (xp,) = evaluate_claims([passing], data, AXES)
    assert xf["status"] == "XFAIL" and not xf["passed"] and claims_ok([xf])
    assert xp["status"] == "XPASS" and xp["passed"] and not claims_ok([xp])


def test_two_metric_claims_and_report_rows() -> None:
    data = cells({"a": [0.8, 0.6]}, loss=[0.4, 0.2])
    claim = Claim(id="r", metric="acc", vs_metric="loss", ratio_at_least=2.5, on="each_seed")
    (res,) = evaluate_claims([claim], data, AXES)
    assert [v["value"] for v in res["groups"][0]["per_seed"].values()] == pytest.approx([2, 3])
    assert res["groups"][0]["seeds_passed"] == 1 and not res["passed"]
    mean = Claim(id="m", metric="acc", vs_metric="loss", diff_at_least=0.39)
    (res,) = evaluate_claims([mean], data, AXES)
    assert res["groups"][0]["value"] == pytest.approx(0.7 - 0.3) and res["passed"]
    (rep,) = evaluate_report([ReportItem.model_validate(
        {"metric": "acc", "lhs": "a", "rhs": "b", "as": "diff"})],
        cells({"a": [0.8], "b": [0.5]}), AXES)
    assert rep["groups"][0]["value"] == pytest.approx(0.3) and "passed" not in rep["groups"][0]
    with pytest.raises(ValueError, match="not both"):
        Claim(metric="acc", vs_metric="loss", lhs="a", rhs="b", ratio_above=1)


def test_outcomes_distinguish_no_coverage_and_errors_from_a_failure() -> None:
    assert outcome({"passed": False, "groups": []}) == "n/a"
    assert outcome({"passed": False, "groups": [
        {"group": "g", "passed": False, "reason": "metric 'acc' missing in some cells"}]}) == "ERR"
    assert outcome({"passed": False, "groups": [{"group": "g", "passed": False,
                                                 "value": 0.1}]}) == "FAIL"
    main = {"claims": [{"id": "c", "passed": True}]}
    table = falsification(main, [{"name": "x", "must_fail": ["c"]}],
                          {"x": {"claims": [{"id": "c", "passed": False, "groups": []}],
                                 "cells": []}})
    assert not table["ok"] and table["verdicts"]["c"]["verdict"] == "NOT FALSIFIED"
    assert json.dumps(table)  # JSON-ready for summary.json


def test_show_on_a_spec_file_and_a_closed_pipe_are_clean(tmp_path: Path) -> None:
    import subprocess
    import sys
    spec = write(tmp_path, SPEC)
    for cmd in ("show", "report", "controls"):
        res = run_harness(cmd, str(spec))
        assert res.returncode == 2, res
        assert "is a file, not a results folder" in res.stderr and "Traceback" not in res.output
    out = tmp_path / "out"
    assert run_harness("run", str(spec), "--out", str(out)).returncode == 0
    proc = subprocess.run(f"{sys.executable} -m harness show {out} --json | head -c 10",
                          shell=True, capture_output=True, text=True, timeout=300)
    assert proc.stdout == '{\n  "spec"'[:10] and "Traceback" not in proc.stderr, proc.stderr


ADOPT_SPEC = """\
name: adopt
seeds: [0, 1]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [16]}
methods:
  train: {use: torch/train-classifier, steps: 80, optimizer: {use: torch/adam, lr: 0.02}}
  reference: {use: torch/train-classifier, steps: 40, optimizer: {use: torch/adam, lr: 0.02}}
metrics: [accuracy]
expect:
  - {id: learns, metric: accuracy, where: {method: train}, at_least: 0.8}
controls:
  - name: untrained
    text: "one optimizer step: the model never learns"
    set: {methods.train.steps: 1}
    must_fail: [learns]
"""


def test_a_control_adopts_the_main_runs_unchanged_cells_instead_of_running_them(
        tmp_path: Path) -> None:
    spec, out = write(tmp_path, ADOPT_SPEC), tmp_path / "out"
    res = run_harness("run", str(spec), "--out", str(out), "--controls")
    assert res.returncode == 0, res
    # the control changes `train` only: its 2 `reference` cells are copied, not run
    assert "2 cell(s) to run, 2 already done (2 unchanged from the main run)" in res.stderr
    main = {c["id"]: c for c in load_summary(out)["cells"]}
    control = {c["id"]: c for c in load_summary(out / "controls" / "untrained")["cells"]}
    for cid, cell in control.items():
        record = json.loads((out / "controls" / "untrained" / "cells" / cid /
                             "record.json").read_text())
        if cell["axes"]["method"] == "reference":
            assert record["adopted_from"] == str(out / "cells" / cid)
            assert cell["identity"] == main[cid]["identity"]
            assert cell["metrics"] == main[cid]["metrics"]
        else:
            assert "adopted_from" not in record
            assert cell["identity"] != main[cid]["identity"]
    # the main run's folder is untouched, and a re-run of both does nothing
    assert not any("adopted_from" in json.loads(p.read_text())
                   for p in (out / "cells").glob("*/record.json"))
    again = run_harness("run", str(spec), "--out", str(out), "--controls")
    assert again.returncode == 0 and again.stderr.count("0 cell(s) to run") == 2, again


TWO_CONTROLS = ADOPT_SPEC + """\
  - name: one-step-reference
    text: "the reference trained for one step (the claim on `train` must still hold)"
    set: {methods.reference.steps: 1, methods.train.steps: 2}
    must_fail: [learns]
"""


def test_the_controls_share_one_executor_call_and_each_cell_lands_in_its_folder(
        tmp_path: Path) -> None:
    from harness.controls import plan_controls
    from harness.executors import InProcessExecutor, PoolExecutor
    from harness.plan import make_plan
    from harness.registry import get_registry
    from harness.runner import run_plan, run_plans
    from harness.spec import load_spec

    class Spy(InProcessExecutor):
        calls: list[list[tuple[str, str]]] = []

        def run(self, plans, out_dir, on_done, on_step):  # type: ignore[no-untyped-def]
            self.calls.append([(p.out_root, p.cell_id) for p in plans])
            super().run(plans, out_dir, on_done, on_step)

    spec = load_spec(write(tmp_path, TWO_CONTROLS), get_registry())
    out, cache = tmp_path / "out", tmp_path / "cache"
    plan = make_plan(spec, out, cache)
    run_plan(plan, executor=InProcessExecutor())
    cplans = plan_controls(plan, cache)
    reports = run_plans(list(cplans.values()), executor=Spy())
    assert len(Spy.calls) == 1  # untrained: 2 cells; one-step-reference: 4 cells
    roots = [str(out / "controls" / "one-step-reference")] * 4 + [
        str(out / "controls" / "untrained")] * 2
    assert sorted(root for root, _ in Spy.calls[0]) == roots
    for name, report in zip(cplans, reports, strict=True):
        folder = out / "controls" / name
        assert report.summary["control"] == name and not report.failed
        assert len(list(folder.glob("cells/*/record.json"))) == 4
        assert all(c["status"] == "ok" for c in load_summary(folder)["cells"])
    assert PoolExecutor.many_folders and not getattr(object(), "many_folders", False)

    class Foreign:  # a plugin executor that knows nothing of out_root: one call per plan
        name, calls = "foreign", 0

        def run(self, plans, out_dir, on_done, on_step):  # type: ignore[no-untyped-def]
            Foreign.calls += 1
            InProcessExecutor().run(plans, out_dir, on_done, on_step)

    again = plan_controls(make_plan(spec, out, cache, force=True), cache, force=True)
    run_plans(list(again.values()), executor=Foreign())
    assert Foreign.calls == 2


def test_controls_through_the_pool_print_one_display(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_harness("run", str(write(tmp_path, TWO_CONTROLS)), "--out", str(out),
                      "--controls", "--jobs", "2")
    assert res.returncode == 0, res
    assert "adopt control untrained: 2 cell(s) to run, 2 already done" in res.stderr
    assert "adopt control one-step-reference: 4 cell(s) to run, 0 already done" in res.stderr
    assert "[6/6] " in res.stderr and "untrained: iris/mlp/train/seed=" in res.stderr


def test_the_pool_keeps_its_workers_for_the_controls(tmp_path: Path) -> None:
    from harness.controls import plan_controls
    from harness.executors import PoolExecutor
    from harness.plan import make_plan
    from harness.registry import get_registry
    from harness.runner import run_plan, run_plans
    from harness.spec import load_spec

    spec = load_spec(write(tmp_path, TWO_CONTROLS), get_registry())
    out, cache = tmp_path / "out", tmp_path / "cache"
    executor = PoolExecutor(jobs=2)
    try:
        plan = make_plan(spec, out, cache)
        assert not run_plan(plan, executor=executor).failed
        pids = sorted(w.proc.pid for w in executor.pool.idle)
        assert len(pids) == 2
        reports = run_plans(list(plan_controls(plan, cache).values()), executor=executor)
        assert sorted(w.proc.pid for w in executor.pool.idle) == pids  # the same processes
        assert all(not r.failed for r in reports)
        for name in ("untrained", "one-step-reference"):
            assert len(list((out / "controls" / name).glob("cells/*/record.json"))) == 4
        assert not list(out.glob("cells/*/record.json"))[4:]  # nothing strayed into main's
    finally:
        executor.close()
    assert executor.pool.idle == []


def test_controls_on_a_spec_without_claims_run_it_plainly(tmp_path: Path) -> None:
    """A report-only spec has nothing to falsify: ``--controls`` runs it as without the
    flag and says so; a spec with claims but no controls is an error (exit 2)."""
    report_only = SPEC.split("expect:")[0] + 'report:\n  - {metric: accuracy, text: "acc"}\n'
    out = tmp_path / "out"
    res = run_harness("run", str(write(tmp_path, report_only)), "--out", str(out),
                      "--controls")
    assert res.returncode == 0, res
    assert "no claims, so no controls to run" in res.stderr
    assert "controls" not in load_summary(out)
    assert not (out / "controls").exists()
    claims_only = SPEC.split("controls:")[0]
    bad = run_harness("run", str(write(tmp_path, claims_only, "c.yaml")), "--out",
                      str(tmp_path / "o2"), "--controls")
    assert bad.returncode == 2 and "has claims but no `controls:`" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_requires_makes_a_claim_a_conjunction() -> None:
    cells = [{"group": "g", "axes": {"dataset": "d", "model": "m", "method": "x"},
              "spec_seed": 0, "metrics": {"gain": 0.3, "cost": 2.0}}]
    gain = Claim(id="gain", metric="gain", at_least=0.15, requires=["cheap"])
    cheap = Claim(id="cheap", metric="cost", at_most=1.5)
    both = evaluate_claims([gain, cheap], cells, {})
    assert [c["status"] for c in both] == ["FAIL", "FAIL"]
    assert both[0]["requires"] == {"cheap": "FAIL"}
    assert "its own bound holds, but it requires 'cheap' (FAIL)" == both[0]["reason"]
    cells[0]["metrics"]["cost"] = 1.0
    assert [c["status"] for c in evaluate_claims([gain, cheap], cells, {})] == ["PASS", "PASS"]
    chained = Claim(id="top", metric="gain", at_least=0.0, requires=["gain"])
    cells[0]["metrics"]["cost"] = 9.0
    out = evaluate_claims([chained, gain, cheap], cells, {})
    assert [c["status"] for c in out] == ["FAIL", "FAIL", "FAIL"]  # through the chain


@pytest.mark.parametrize("requires, message", [
    ("[lerns]", "unknown claim id 'lerns'"),
    ("[learns]", "claim 'learns' requires itself"),
])
def test_bad_requires_are_located_errors(tmp_path: Path, requires: str, message: str) -> None:
    text = SPEC.replace("  - {id: learns, metric: accuracy, at_least: 0.8}\n",
                        f"  - {{id: learns, metric: accuracy, at_least: 0.8, "
                        f"requires: {requires}}}\n")
    res = run_harness("validate", str(write(tmp_path, text)))
    assert res.returncode == 2 and message in res.stderr, res
    assert "spec.yaml:" in res.stderr and "Traceback" not in res.stderr


def test_claims_requiring_each_other_in_a_circle_are_an_error(tmp_path: Path) -> None:
    text = SPEC.replace("  - {id: learns, metric: accuracy, at_least: 0.8}\n",
                        "  - {id: learns, metric: accuracy, at_least: 0.8, requires: [other]}\n"
                        "  - {id: other, metric: accuracy, at_least: 0.1, requires: [learns]}\n")
    res = run_harness("validate", str(write(tmp_path, text)))
    assert res.returncode == 2 and "in a circle: learns -> other -> learns" in res.stderr, res
