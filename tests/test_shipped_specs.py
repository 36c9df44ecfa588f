"""Every shipped spec is valid and every one of its claims is named by a control."""

from __future__ import annotations

import pytest
from conftest import SPECS, run_harness


@pytest.mark.parametrize("spec", sorted(p.name for p in SPECS.glob("*.yaml")))
def test_shipped_spec_passes_validate_strict(spec: str) -> None:
    res = run_harness("validate", "--strict", str(SPECS / spec))
    assert res.returncode == 0, res
