"""Claim evaluation on per-cell metrics: bounds, ratios, differences, per-seed counts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.claims import evaluate_claim
from harness.specmodel import Claim
from harness.stats import summarize

VALUES = {"dataset": {"spring", "pend"}, "model": {"hnn", "mlp"}, "method": {"train"},
          "point": set()}


def cells(table: dict[tuple[str, str], list[float]], metric: str = "energy") -> list[dict]:
    out = []
    for (dataset, model), vals in table.items():
        for seed, v in enumerate(vals):
            out.append({"group": f"{dataset}/{model}/train", "spec_seed": seed,
                        "axes": {"dataset": dataset, "model": model, "method": "train",
                                 "point": None},
                        "status": "ok" if v is not None else "failed",
                        "metrics": {metric: v} if v is not None else {}})
    return out


DATA = cells({("spring", "hnn"): [1.0, 2.0, 3.0], ("spring", "mlp"): [20.0, 30.0, 25.0],
              ("pend", "hnn"): [5.0, 5.0, 5.0], ("pend", "mlp"): [6.0, 4.0, 6.0]})


def test_ratio_each_seed_pairs_groups_on_other_axes() -> None:
    claim = Claim(metric="energy", lhs="mlp", rhs="hnn", ratio_at_least=10, on="each_seed",
                  where={"dataset": "spring"})
    res = evaluate_claim(claim, DATA, VALUES)
    assert res["passed"] is False  # seed 2: 25/3 = 8.3
    row = res["groups"][0]
    assert row["vs"] == "spring/hnn/train"
    assert [v["value"] for v in row["per_seed"].values()] == pytest.approx([20, 15, 25 / 3])
    assert row["seeds_passed"] == 2
    claim = claim.model_copy(update={"min_seeds": 2})
    assert evaluate_claim(claim, DATA, VALUES)["passed"] is True


def test_mean_comparison_over_every_matching_pair() -> None:
    claim = Claim(metric="energy", lhs={"model": "hnn"}, rhs={"model": "mlp"}, diff_below=0)
    res = evaluate_claim(claim, DATA, VALUES)
    by_group = {r["group"]: r for r in res["groups"]}
    assert by_group["spring/hnn/train"]["value"] == pytest.approx(2.0 - 25.0)
    assert by_group["pend/hnn/train"]["value"] == pytest.approx(5.0 - 16 / 3)
    assert res["passed"] is True


def test_bound_on_mean_and_between() -> None:
    claim = Claim(metric="energy", where={"model": "hnn", "dataset": "spring"},
                  at_least=1.5, at_most=2.5)
    res = evaluate_claim(claim, DATA, VALUES)
    assert res["passed"] is True and res["groups"][0]["value"] == pytest.approx(2.0)
    assert evaluate_claim(claim.model_copy(update={"at_most": 1.9}), DATA, VALUES)[
        "passed"] is False


def test_strict_bounds() -> None:
    claim = Claim(metric="energy", where={"model": "hnn", "dataset": "pend"}, above=5.0)
    assert evaluate_claim(claim, DATA, VALUES)["passed"] is False
    claim = Claim(metric="energy", where={"model": "hnn", "dataset": "pend"}, at_least=5.0)
    assert evaluate_claim(claim, DATA, VALUES)["passed"] is True


def test_missing_metric_or_failed_cell_fails_the_claim() -> None:
    data = cells({("spring", "hnn"): [1.0, None, 3.0]})
    claim = Claim(metric="energy", at_most=10)
    res = evaluate_claim(claim, data, VALUES)
    assert res["passed"] is False and "missing" in res["groups"][0]["reason"]
    res = evaluate_claim(Claim(metric="nope", at_most=10), DATA, VALUES)
    assert res["passed"] is False


def test_no_matching_group_fails() -> None:
    res = evaluate_claim(Claim(metric="energy", lhs="hnn", rhs="mlp", ratio_below=1,
                               where={"dataset": "nowhere"}), DATA, VALUES)
    assert res["passed"] is False and res["reason"] == "no group matched this claim"


@pytest.mark.parametrize("kwargs", [
    {"metric": "a"},
    {"metric": "a", "at_least": 1, "ratio_below": 2, "lhs": "x", "rhs": "y"},
    {"metric": "a", "ratio_below": 2},
    {"metric": "a", "at_least": 1, "lhs": "x", "rhs": "y"},
    {"metric": "a", "at_least": 1, "min_seeds": 2},
])
def test_inconsistent_claims_are_rejected(kwargs) -> None:
    with pytest.raises(ValidationError):
        Claim(**kwargs)


def test_summarize() -> None:
    s = summarize([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0 and s["n"] == 3
    assert s["ci95"] == pytest.approx([2 - 4.302652729749464 / 3 ** 0.5,
                                       2 + 4.302652729749464 / 3 ** 0.5])
    assert summarize([4.0]) == {"mean": 4.0, "std": 0.0, "ci95": None, "n": 1}
    assert summarize([])["n"] == 0


def test_pairs_on_sweep_keys_not_on_the_point_name() -> None:
    def cell(steps: int, bs: int, value: float) -> dict:
        return {"group": f"d/m/t/steps={steps},batch={bs}", "spec_seed": 0, "status": "ok",
                "axes": {"dataset": "d", "model": "m", "method": "t",
                         "point": f"steps={steps},batch={bs}", "steps": steps, "batch": bs},
                "metrics": {"acc": value}}
    data = [cell(30, 16, 0.9), cell(10, 16, 0.5), cell(30, 32, 0.8), cell(10, 32, 0.7)]
    values = {"dataset": {"d"}, "model": {"m"}, "method": {"t"},
              "point": {c["axes"]["point"] for c in data}, "steps": {"30", "10"},
              "batch": {"16", "32"}}
    res = evaluate_claim(Claim(metric="acc", lhs={"steps": 30}, rhs={"steps": 10},
                               diff_at_least=0.1), data, values)
    assert [r["value"] for r in res["groups"]] == pytest.approx([0.4, 0.1])
    assert res["passed"] is True
