"""Components of three papers compose through the generic training with no glue code."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SPECS, load_summary, run_harness


@pytest.mark.slow
def test_fop_selective_backprop_and_lca_compose(tmp_path: Path) -> None:
    res = run_harness("run", str(SPECS / "composition.yaml"), "--seeds", "0",
                      "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res
    summary = load_summary(tmp_path / "o")
    assert [c["passed"] for c in summary["claims"]] == [True] * 4
    cell = next(c for c in summary["cells"] if c["axes"]["method"] == "fop-sb-lca")
    assert cell["params"]["method"]["optimizer"]["use"] == "fop/fop"
    assert cell["params"]["method"]["selection"]["use"] == "selection/selective-backprop"
    assert cell["metrics"]["lca_residual_rel"] < 0.01
    assert cell["metrics"]["noisy_share"] > 0.35
