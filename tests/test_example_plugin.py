"""The example plugin of docs/writing-an-adapter.md (examples/harness-example): a real pip
install, then the real CLI: list, describe, validate --strict, run --controls."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, load_summary, run_harness

EXAMPLE = ROOT / "examples" / "harness-example"
SPEC = EXAMPLE / "two-moons.yaml"


@pytest.fixture(scope="module")
def example_env(tmp_path_factory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("example-site")
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
            str(target), str(EXAMPLE)]
    if importlib.util.find_spec("setuptools") is not None:
        args.insert(4, "--no-build-isolation")
    subprocess.run(args, check=True, capture_output=True, timeout=300)
    return {"PYTHONPATH": str(target)}


def test_example_is_listed_described_and_valid(example_env) -> None:
    res = run_harness("list", env=example_env)
    assert res.returncode == 0, res
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("example/two-moons"))
    assert "harness-example 0.1.0 (example) v1" in line
    res = run_harness("describe", "example/balanced-accuracy", env=example_env)
    assert res.returncode == 0, res
    assert "balanced_accuracy — declared by the adapter" in res.stdout
    res = run_harness("validate", "--strict", str(SPEC), env=example_env)
    assert res.returncode == 0, res
    assert "4 cells, 1 claims, 1 controls" in res.stdout


@pytest.mark.slow
def test_example_runs_with_its_control(example_env, tmp_path: Path) -> None:
    out = tmp_path / "moons"
    res = run_harness("run", str(SPEC), "--out", str(out), "--controls",
                      "--set", "methods.train.epochs=15", "--seeds", "0", env=example_env)
    assert res.returncode == 0, res
    assert "PASS [mlp-beats-centroid]" in res.stdout and "falsified by untrained" in res.stdout
    agg = load_summary(out)["aggregates"]
    assert agg["moons/mlp/train"]["balanced_accuracy"]["mean"] > 0.9
    assert 0.6 < agg["moons/mlp/centroid"]["accuracy"]["mean"] < 0.9  # built-in metric too
