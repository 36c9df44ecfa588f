"""Issue 17/18: every key is validated at `validate` time (selectors, claim metrics against
the outputs metric adapters declare, claim contradictions, CLI values, `extends` removing
entries), with file, line, key path and did-you-mean, exit 2 and no traceback.

The CLI runs in-process (``harness.cli.main``: the real argument parsing, messages and exit
codes, without paying a Python start per case)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import add_test_adapters

from harness.claims import evaluate_claims
from harness.cli import main
from harness.selectors import matches
from harness.specmodel import Claim

BASE = """\
name: v
seeds: [0, 1]
datasets:
  iris: {use: sklearn/iris}
  wine: {use: sklearn/wine}
models:
  mlp: {use: torch/mlp, hidden: [8]}
methods:
  train: {use: torch/train-classifier, steps: 2}
metrics: [accuracy]
"""

SWEEP = BASE + """\
sweep:
  models.mlp.hidden: [[16], [64]]
  methods.train.steps: [1, 2]
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    got = capsys.readouterr()
    text = got.out + got.err
    assert "Traceback" not in text
    return code, text


def validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
             *extra: str, name: str = "spec.yaml") -> tuple[int, str]:
    spec = tmp_path / name
    spec.write_text(text)
    return cli(capsys, "validate", str(spec), *extra)


# -- selectors: list values match exactly, "any of" is explicit ---------------------------
def test_a_list_in_a_selector_matches_a_list_value_exactly() -> None:
    axes = {"dataset": "wine", "hidden": [16], "lr": 0.01}
    assert matches(axes, {"hidden": [16]})
    assert not matches(axes, {"hidden": [64]})
    assert not matches({"hidden": 16}, {"hidden": [16, 64]})  # no longer "any of"
    assert matches(axes, {"hidden": {"in": [[16], [64]]}})
    assert matches(axes, {"lr": {"in": [0.1, 0.01]}, "dataset": "wine"})
    assert matches(axes, {"lr": 1.0e-2})
    assert not matches(axes, {"dataset": {"in": ["iris"]}})


def test_claims_pair_groups_on_a_list_valued_axis() -> None:
    """The issue's bug: with a list-valued swept param, `lhs: {lr: 0.01}, rhs: {lr: 0.001}`
    failed with "no group matches rhs"."""
    cells = []
    for hidden in ([16], [64]):
        for lr, acc in ((0.01, 0.9), (0.001, 0.6)):
            point = f"hidden={hidden},lr={lr}"
            cells.append({"group": f"wine/mlp/train/{point}", "spec_seed": 0, "status": "ok",
                          "axes": {"dataset": "wine", "model": "mlp", "method": "train",
                                   "point": point, "hidden": hidden, "lr": lr},
                          "metrics": {"accuracy": acc}})
    values = {"dataset": {"wine"}, "model": {"mlp"}, "method": {"train"},
              "point": {c["axes"]["point"] for c in cells}, "hidden": {"[16]", "[64]"},
              "lr": {"0.01", "0.001"}}
    claim = Claim(metric="accuracy", lhs={"lr": 0.01}, rhs={"lr": 0.001}, ratio_at_least=1.2)
    (result,) = evaluate_claims([claim], cells, values)
    assert result["status"] == "PASS", result
    assert len(result["groups"]) == 2
    only16 = Claim(metric="accuracy", where={"hidden": [16]}, at_least=0.5)
    (result,) = evaluate_claims([only16], cells, values)
    assert [g["group"] for g in result["groups"]] == [
        "wine/mlp/train/hidden=[16],lr=0.001", "wine/mlp/train/hidden=[16],lr=0.01"]


def test_cells_only_selects_a_list_value(tmp_path: Path, capsys) -> None:
    code, text = validate(tmp_path, capsys, SWEEP + "cells:\n  only: [{hidden: [16]}]\n")
    assert code == 0 and "8 cells" in text, text  # 2 datasets x 2 lr x 2 seeds
    code, text = validate(tmp_path, capsys,
                          SWEEP + "cells:\n  only: [{hidden: {in: [[16], [64]]}, steps: 1}]\n")
    assert code == 0 and "8 cells" in text, text
    code, text = validate(tmp_path, capsys, SWEEP + "cells:\n  only: [{steps: [1, 2]}]\n")
    assert code == 2 and "cells.only[0].steps" in text and "{in: [1,2]}" in text, text


# -- selectors name real axes and values -------------------------------------------------
SELECTOR_CASES = [
    ("only-axis", "cells:\n  only: [{datset: wine}]\n", "spec.yaml:12",
     "cells.only[0].datset", "did you mean 'dataset'"),
    ("only-value", "cells:\n  only: [{dataset: wien}]\n", "spec.yaml:12",
     "cells.only[0].dataset", "did you mean 'wine'"),
    ("exclude-value", "cells:\n  exclude:\n    - {method: trian}\n", "spec.yaml:13",
     "cells.exclude[0].method", "did you mean 'train'"),
    ("in-value", "cells:\n  only: [{dataset: {in: [wine, irs]}}]\n", "spec.yaml:12",
     "cells.only[0].dataset", "did you mean 'iris'"),
    ("claim-where-axis", "expect:\n  - {metric: accuracy, where: {datset: wine}, at_least: 0}\n",
     "spec.yaml:12", "expect[0].where.datset", "did you mean 'dataset'"),
    ("claim-lhs-value", "expect:\n  - {metric: accuracy, lhs: {dataset: wien}, "
     "rhs: {dataset: iris}, ratio_at_least: 1}\n", "spec.yaml:12", "expect[0].lhs.dataset",
     "did you mean 'wine'"),
    ("report-rhs-value", "report:\n  - {metric: accuracy, lhs: {dataset: wine}, "
     "rhs: {dataset: irsi}, as: ratio}\n", "spec.yaml:12", "report[0].rhs.dataset",
     "did you mean 'iris'"),
]


@pytest.mark.parametrize("case", SELECTOR_CASES, ids=[c[0] for c in SELECTOR_CASES])
def test_selector_typos_are_errors(case, tmp_path: Path, capsys) -> None:
    _, extra, *expected = case
    code, text = validate(tmp_path, capsys, BASE + extra)
    assert code == 2, text
    for piece in expected:
        assert piece in text, (piece, text)


def test_metric_where_and_control_cells_are_checked(tmp_path: Path, capsys) -> None:
    text = BASE.replace("metrics: [accuracy]",
                        "metrics:\n  - accuracy\n  - {use: macro-f1, where: {dataset: wien}}")
    code, out = validate(tmp_path, capsys, text)
    assert code == 2 and "spec.yaml:12" in out and "metrics[1].where.dataset" in out
    assert "did you mean 'wine'" in out
    never = text.replace("wien", "wine") + "cells:\n  exclude: [{dataset: wine}]\n"
    code, out = validate(tmp_path, capsys, never)
    assert code == 2 and "metrics[1].where" in out and "never computed" in out, out
    control = BASE + """\
expect:
  - {id: good, metric: accuracy, at_least: 0.5}
controls:
  - name: c
    set: {methods.train.steps: 1}
    cells: {only: [{methd: train}]}
    must_fail: [good]
"""
    code, out = validate(tmp_path, capsys, control)
    assert code == 2 and "controls[0].cells.only[0].methd" in out
    assert "did you mean 'method'" in out and "spec.yaml:16" in out


# -- claim metrics against the outputs metrics declare -----------------------------------
METRIC_CASES = [
    ("claim-typo", "expect:\n  - {metric: acuracy, at_least: 0.5}\n", "spec.yaml:12",
     "expect[0].metric", "'acuracy'", "did you mean 'accuracy'"),
    ("adapter-name-not-output", "metrics: [macro-f1]\nexpect:\n  - {metric: macro-f1, "
     "at_least: 0.5}\n", "spec.yaml:12", "expect[0].metric", "did you mean 'macro_f1'"),
    ("vs-metric-typo", "metrics: [accuracy, cross-entropy]\nexpect:\n  - {metric: accuracy, "
     "vs_metric: cross_entropi, ratio_at_least: 0}\n", "spec.yaml:12", "expect[0].vs_metric",
     "did you mean 'cross_entropy'"),
    ("report-typo", "report:\n  - {metric: accurcy}\n", "spec.yaml:12", "report[0].metric",
     "did you mean 'accuracy'"),
    ("scalars-declared", "metrics: [accuracy, scalars]\nexpect:\n  - {metric: train_acuracy, "
     "at_least: 0}\n", "spec.yaml:12", "did you mean 'train_accuracy'"),
]


@pytest.mark.parametrize("case", METRIC_CASES, ids=[c[0] for c in METRIC_CASES])
def test_claims_on_metrics_nobody_produces_are_errors(case, tmp_path: Path, capsys) -> None:
    _, extra, *expected = case
    text = BASE.replace("metrics: [accuracy]\n", "") if extra.startswith("metrics:") else BASE
    code, out = validate(tmp_path, capsys, text + extra)
    assert code == 2, out
    for piece in expected:
        assert piece in out, (piece, out)


def test_metric_outputs_follow_params_and_scalars(tmp_path: Path, capsys) -> None:
    text = BASE.replace("metrics: [accuracy]", "metrics:\n  - {use: accuracy, name: acc_test}"
                        "\n  - {use: accuracy, logits: train_logits, targets: train_targets,"
                        " name: acc_train}\n  - {use: scalars, prefix: s_}")
    claims = ("expect:\n  - {metric: acc_test, at_least: 0}\n"
              "  - {metric: acc_train, vs_metric: s_train_accuracy, ratio_at_least: 0}\n")
    code, out = validate(tmp_path, capsys, text + claims)
    assert code == 0, out
    code, out = validate(tmp_path, capsys, text + "expect:\n  - {metric: accuracy, at_least: 0}\n")
    assert code == 2 and "expect[0].metric" in out, out


def test_a_metric_missing_from_the_selected_cells_only(tmp_path: Path, capsys) -> None:
    text = BASE.replace("metrics: [accuracy]",
                        "metrics:\n  - accuracy\n  - {use: macro-f1, where: {dataset: wine}}")
    ok = text + "expect:\n  - {metric: macro_f1, where: {dataset: wine}, at_least: 0}\n"
    assert validate(tmp_path, capsys, ok)[0] == 0
    bad = text + "expect:\n  - {metric: macro_f1, where: {dataset: iris}, at_least: 0}\n"
    code, out = validate(tmp_path, capsys, bad)
    assert code == 2 and "no metric of the cells it selects produces 'macro_f1'" in out, out


def test_duplicate_metric_names_in_one_cell(tmp_path: Path, capsys) -> None:
    for metrics in ("[accuracy, accuracy]",
                    "[accuracy, {use: accuracy, logits: train_logits, targets: train_targets}]"):
        code, out = validate(tmp_path, capsys, BASE.replace("[accuracy]", metrics))
        assert code == 2 and "metrics[0] and metrics[1] both produce 'accuracy'" in out, out
        assert "spec.yaml:10" in out
    disjoint = ("\n  - {use: accuracy, where: {dataset: iris}}"
                "\n  - {use: accuracy, where: {dataset: wine}}")
    assert validate(tmp_path, capsys, BASE.replace(" [accuracy]", disjoint))[0] == 0


# -- claims that can never pass, or compare a group with itself ---------------------------
CONTRADICTIONS = [
    ("bounds", "  - {metric: accuracy, at_least: 0.9, at_most: 0.1}\n", [],
     ["expect[0]", "can never pass"]),
    ("ratio-bounds", "  - {metric: accuracy, lhs: wine, rhs: iris, ratio_above: 2, "
     "ratio_below: 1}\n", [], ["expect[0]", "can never pass"]),
    ("min-seeds", "  - {metric: accuracy, at_least: 0.1, on: each_seed, min_seeds: 3}\n", [],
     ["spec.yaml:12", "expect[0].min_seeds", "more than the spec's 2 seed(s)"]),
    ("lhs-is-rhs", "  - {metric: accuracy, lhs: wine, rhs: wine, ratio_at_least: 1}\n", [],
     ["spec.yaml:12", "expect[0].rhs", "compared with itself"]),
    ("vs-itself", "  - {metric: accuracy, vs_metric: accuracy, ratio_at_least: 1}\n", [],
     ["expect[0].vs_metric", "always 1"]),
    ("selects-no-cell", "  - {metric: accuracy, where: {dataset: wine}, at_least: 0}\n"
     "cells: {exclude: [{dataset: wine}]}\n", [], ["expect[0].where", "selects no cell"]),
    ("lhs-is-rhs-by-where", "  - {metric: accuracy, where: {dataset: wine}, lhs: {model: mlp},"
     " rhs: {dataset: wine}, diff_at_least: 0}\n", [], ["expect[0].rhs", "compared with itself"]),
]


@pytest.mark.parametrize("case", CONTRADICTIONS, ids=[c[0] for c in CONTRADICTIONS])
def test_claim_contradictions_are_errors(case, tmp_path: Path, capsys) -> None:
    _, claim, extra, expected = case
    code, out = validate(tmp_path, capsys, BASE + "expect:\n" + claim, *extra)
    assert code == 2, out
    for piece in expected:
        assert piece in out, (piece, out)


def test_min_seeds_under_a_seeds_override_and_in_controls(tmp_path: Path, capsys) -> None:
    claim = "expect:\n  - {id: c, metric: accuracy, at_least: 0.1, on: each_seed, min_seeds: 2}\n"
    assert validate(tmp_path, capsys, BASE + claim)[0] == 0
    # a quick run with fewer seeds than the claim needs is the user's choice, not an error
    assert validate(tmp_path, capsys, BASE + claim, "--seeds", "0")[0] == 0
    control = "controls:\n  - {name: few, set: {methods.train.steps: 1}, seeds: [0], " \
              "must_fail: [c]}\n"
    code, out = validate(tmp_path, capsys, BASE + claim + control)
    assert code == 2 and "controls[0].seeds" in out and "for want of seeds" in out, out


# -- command-line values -----------------------------------------------------------------
@pytest.mark.parametrize("args,expected", [
    (["run", "--jobs", "0"], "--jobs must be at least 1"),
    (["run", "--jobs", "-2"], "--jobs must be at least 1"),
    (["validate", "--seeds", "-1"], "non-negative integer"),
    (["validate", "--seeds", "0,0"], "seed 0 is given twice"),
    (["validate", "--seeds", ","], "--seeds is empty"),
    (["validate", "--seeds", "0,x"], "comma-separated integers"),
])
def test_bad_cli_values_exit_2(args, expected, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE)
    command, *rest = args
    code, out = cli(capsys, command, str(spec), *rest)
    assert code == 2 and expected in out, out
    assert not (tmp_path / "results").exists()


# -- extends: KEY: null removes an inherited entry ---------------------------------------
def test_extends_removes_an_inherited_entry_with_null(tmp_path: Path, capsys) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    child = "extends: base.yaml\nname: child\ndatasets:\n  wine: null\n"
    code, out = validate(tmp_path, capsys, child, name="child.yaml")
    assert code == 0 and "2 cells" in out, out  # iris only, 2 seeds
    claim = "expect:\n  - {metric: accuracy, where: {dataset: wine}, at_least: 0}\n"
    code, out = validate(tmp_path, capsys, child + claim, name="child.yaml")
    assert code == 2 and "no dataset named 'wine'" in out, out
    code, out = validate(tmp_path, capsys, BASE.replace("  wine: {use: sklearn/wine}",
                                                        "  wine: null"))
    assert code == 2 and "datasets.wine" in out, out  # nothing to remove: validated as written


def test_report_rows_and_controls_that_measure_nothing(tmp_path: Path, capsys) -> None:
    row = "report:\n  - {metric: accuracy, lhs: wine, rhs: {dataset: wine}, as: ratio}\n"
    code, out = validate(tmp_path, capsys, BASE + row)
    assert code == 2 and "report[0].rhs" in out and "compared with itself" in out, out
    control = BASE + """\
expect:
  - {id: wine-ok, metric: accuracy, where: {dataset: wine}, at_least: 0.5}
controls:
  - {name: c, set: {methods.train.steps: 1}, cells: {only: [{dataset: iris}]},
     must_fail: [wine-ok]}
"""
    code, out = validate(tmp_path, capsys, control)
    assert code == 2 and "controls[0].must_fail[0]" in out and "for want of cells" in out, out


def test_an_undeclared_metric_is_taken_to_produce_its_adapter_name(tmp_path: Path,
                                                                   capsys) -> None:
    from harness import CellResult, Metric, RunContext
    from harness.registry import get_registry

    class MyScore(Metric):
        """test-only: declares no outputs"""

        name = "test/my-score"

        def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
            return {"my_score": 1.0}

    add_test_adapters(get_registry(), MyScore)
    text = BASE.replace("[accuracy]", "[accuracy, test/my-score]")
    ok = text + "expect:\n  - {metric: my_score, at_least: 0}\n"
    assert validate(tmp_path, capsys, ok)[0] == 0
    code, out = validate(tmp_path, capsys, text + "expect:\n  - {metric: score, at_least: 0}\n")
    assert code == 2 and "'test/my-score' declares no outputs (taken to be 'my_score')" in out


def test_a_claim_a_reduced_run_leaves_uncovered_is_a_warning(tmp_path: Path, capsys) -> None:
    """`--set` may restrict a spec on purpose (a quick run): what its cells no longer cover
    is a warning naming the claim, not an error."""
    claim = "expect:\n  - {metric: accuracy, where: {dataset: wine}, at_least: 0}\n"
    from harness.errors import SpecWarning
    with pytest.warns(SpecWarning, match="selects no cell"):
        code, out = validate(tmp_path, capsys, BASE + claim, "--set",
                             "cells={exclude: [{dataset: wine}]}")
    assert code == 0, out
