"""Third-party plugins: installed packages are discovered through the `harness` entry-point
group, one at a time; a broken one is named and skipped; a name clash names both."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, load_summary, run_harness

PLUGINS = ROOT / "tests" / "plugins"


def install(name: str, target: Path) -> None:
    """A real pip install of the plugin package into its own folder."""
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
            str(target), str(PLUGINS / name)]
    if importlib.util.find_spec("setuptools") is not None:
        args.insert(4, "--no-build-isolation")
    subprocess.run(args, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plugins")
    out = {}
    for name in ("harness-toy", "harness-broken", "harness-clash"):
        install(name, root / name)
        out[name] = root / name
    return out


def env_with(*paths: Path) -> dict[str, str]:
    return {"PYTHONPATH": ":".join(str(p) for p in paths)}


def test_toy_plugin_is_discovered_and_runs(site, tmp_path: Path) -> None:
    env = env_with(site["harness-toy"])
    res = run_harness("list", env=env)
    assert res.returncode == 0, res
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("toy/coin"))
    assert "harness-toy 0.3.1" in line and "v2" in line
    spec = tmp_path / "toy.yaml"
    spec.write_text("name: toy\nseeds: [0, 1]\ndatasets:\n  coin: {use: toy/coin, n: 2000, "
                    "bias: 0.25}\nmethods:\n  count: toy/count\nmetrics: [toy/head-rate]\n"
                    "expect:\n  - {metric: head_rate, between: 0}\n")
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"), env=env)
    assert res.returncode == 2 and "unknown key 'between'" in res.output
    spec.write_text(spec.read_text().replace("between: 0", "at_least: 0.2, at_most: 0.3"))
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"), env=env)
    assert res.returncode == 0, res
    assert "harness-toy-0.3.1" in res.stderr  # the plugins header
    rates = [c["metrics"]["head_rate"] for c in load_summary(tmp_path / "o")["cells"]]
    assert all(0.2 < r < 0.3 for r in rates) and rates[0] != rates[1]


def test_broken_plugin_is_named_and_skipped(site) -> None:
    res = run_harness("list", env=env_with(site["harness-toy"], site["harness-broken"]))
    assert res.returncode == 0, res
    assert "plugin 'broken'" in res.stderr and "harness-broken 1.0.0" in res.stderr
    assert "a_module_that_does_not_exist" in res.stderr
    assert "toy/coin" in res.stdout and "torch/mlp" in res.stdout  # the rest still loads
    assert "Traceback" not in res.output


def test_strict_plugins_fails_on_a_broken_plugin(site) -> None:
    res = run_harness("--strict-plugins", "list", env=env_with(site["harness-broken"]))
    assert res.returncode == 2
    assert "plugin 'broken'" in res.stderr and "Traceback" not in res.output


def test_name_clash_names_both_plugins_and_skips_the_newcomer(site) -> None:
    res = run_harness("list", env=env_with(site["harness-clash"]))
    assert res.returncode == 0, res
    assert "'torch/mlp' is claimed by two plugins" in res.stderr
    assert "'clash'" in res.stderr and "'generic'" in res.stderr
    assert "harness-clash 0.0.1" in res.stderr and "Traceback" not in res.output
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("torch/mlp"))
    assert "harness-bench" in line  # the core's adapter is kept, the newcomer skipped
    res = run_harness("--strict-plugins", "list", env=env_with(site["harness-clash"]))
    assert res.returncode == 2 and "claimed by two plugins" in res.stderr
