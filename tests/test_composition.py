"""Components of three papers compose through the generic training with no glue code,
and each composition claim is falsified by its control (the real CLI, one seed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SPECS, load_summary, run_harness


@pytest.mark.slow
def test_fop_selective_backprop_and_lca_compose_and_controls_falsify(tmp_path: Path) -> None:
    res = run_harness("run", str(SPECS / "composition.yaml"), "--seeds", "0",
                      "--out", str(tmp_path / "o"), "--controls")
    assert res.returncode == 0, res
    summary = load_summary(tmp_path / "o")
    assert [c["status"] for c in summary["claims"]] == ["PASS"] * 3
    cell = next(c for c in summary["cells"] if c["axes"]["method"] == "fop-sb-lca")
    assert cell["params"]["method"]["optimizer"]["use"] == "fop/fop"
    assert cell["params"]["method"]["selection"]["use"] == "selection/selective-backprop"
    assert cell["metrics"]["lca_residual_rel"] < 0.01
    assert cell["metrics"]["noisy_share"] > 0.35
    table = summary["controls"]
    assert table["ok"], table["problems"]
    by_name = {c["name"]: c["claims"] for c in table["controls"]}
    assert by_name["lca-first-order"]["lca-conserves"] == "FAIL"
    assert by_name["sb-loss-blind"]["sb-noisy"] == "FAIL"
    assert by_name["uniform-selects-by-loss"]["uniform-base-rate"] == "FAIL"


@pytest.mark.slow
def test_digits_mlp_controls_falsify_both_claims(tmp_path: Path) -> None:
    res = run_harness("run", str(SPECS / "digits-mlp.yaml"), "--seeds", "0",
                      "--out", str(tmp_path / "o"), "--controls")
    assert res.returncode == 0, res
    table = load_summary(tmp_path / "o")["controls"]
    assert table["ok"]
    assert {c["name"]: c["claims"] for c in table["controls"]} == {
        "untrained": {"accurate": "FAIL", "accurate-each-seed": "FAIL"},
        "linear-tiny": {"accurate": "FAIL", "accurate-each-seed": "FAIL"}}
