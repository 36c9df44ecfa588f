"""Fast start: `--help`, `list`, `validate` and `describe` import neither torch nor the
adapters' heavy modules; the plugin manifest that makes it so is never stale.
(Timings are in benchmarks/cli_startup.py, not here.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_harness
from test_plugins import install

HEAVY = ("torch", "numpy", "scipy", "sklearn", "matplotlib", "transformers", "pandas")

PROBE = """
import sys
from harness.cli import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
print("HEAVY", [m for m in {heavy!r} if m in sys.modules], "CODE", code)
"""


def probe(argv: list[str], cache: Path) -> str:
    env = {**os.environ, "HARNESS_CACHE": str(cache), "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("HEAVY")), "")
    assert line, proc.stdout + proc.stderr
    return line


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A cache folder whose manifest the first process wrote (it imports every plugin)."""
    cache = tmp_path_factory.mktemp("cache")
    probe(["list"], cache)
    return cache


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["validate", "specs/digits-mlp.yaml"],
                                  ["describe", "torch/train-classifier"]])
def test_no_heavy_import_at_start(argv: list[str], warm_cache: Path) -> None:
    line = probe(argv, warm_cache)
    assert line.startswith("HEAVY [] CODE 0"), line


def test_manifest_follows_the_plugin_source(tmp_path: Path, warm_cache: Path) -> None:
    site = tmp_path / "site"
    install("harness-toy", site)
    shutil.copytree(warm_cache, tmp_path / "cache")  # only the new plugin is imported
    env = {"PYTHONPATH": str(site), "HARNESS_CACHE": str(tmp_path / "cache")}
    first = run_harness("list", env=env)
    assert first.returncode == 0 and "toy/coin" in first.stdout, first
    manifest = json.loads((tmp_path / "cache" / "plugin-manifest.json").read_text())
    assert any(key.startswith("toy|") for key in manifest["entries"])
    # an edited plugin: the next process sees the edit, not the cached description
    plugin = site / "harness_toy" / "plugin.py"
    old = "Coin flips with a given bias, drawn from the run context."
    plugin.write_text(plugin.read_text().replace(old, "Edited coin description."))
    stat = plugin.stat()
    os.utime(plugin, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    again = run_harness("list", env=env)
    assert again.returncode == 0 and "Edited coin description." in again.stdout, again
    entries = json.loads((tmp_path / "cache" / "plugin-manifest.json").read_text())["entries"]
    assert len([k for k in entries if k.startswith("toy|")]) == 2  # a new stamp, a new entry
    # with the manifest warm, a spec of the plugin still runs (its class imported lazily)
    spec = tmp_path / "toy.yaml"
    spec.write_text("name: toy\nseeds: [0]\ndatasets:\n  coin: {use: toy/coin, n: 100}\n"
                    "methods:\n  count: toy/count\nmetrics: [toy/head-rate]\n")
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"), env=env)
    assert res.returncode == 0, res


IRIS = """\
name: iris-cached
seeds: [0]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [8]}
methods:
  train: {use: torch/train-classifier, steps: 5}
metrics: [accuracy]
"""

OTHERS = ("harness_adapters.hnn.rollout", "harness_adapters.rxrx1.metrics",
          "harness_adapters.bigbench.dataset", "harness_adapters.xlingual.icl",
          "harness_adapters.prioritization.selection", "scipy.stats")


def test_a_cached_rerun_imports_only_the_plugins_whose_hooks_it_calls(
        tmp_path: Path, warm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "iris.yaml"
    spec.write_text(IRIS)
    argv = ["run", str(spec), "--out", str(tmp_path / "out")]
    assert "CODE 0" in probe(argv, warm_cache)  # the first run records the cell
    code = PROBE.replace('print("HEAVY"', 'print("OTHERS", [m for m in {others!r} if m in '
                         'sys.modules])\nprint("HEAVY"').format(argv=argv, heavy=HEAVY,
                                                                others=OTHERS)
    env = {**os.environ, "HARNESS_CACHE": str(warm_cache), "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert "OTHERS []" in proc.stdout and "CODE 0" in proc.stdout, proc.stdout + proc.stderr
    assert "0 ran, 1 reused" in proc.stderr
    # the hnn plugin's run_finished and report hooks were registered, its adapters not read
    from harness.registry import Registry
    monkeypatch.setenv("HARNESS_CACHE", str(warm_cache))
    registry = Registry()
    registry.load_entry_points()
    registry.hooks.harness_run_finished(summary={"adapters": []}, out_dir=str(tmp_path))
    assert registry._pm.has_plugin("hnn") and "hnn" in registry._unread
    assert registry.get("hnn/train").name == "hnn/train"  # still resolvable, lazily
