"""Plugin fault injection: a plugin whose import exits, raises a BaseException, calls
os._exit or hangs, whose hooks are malformed, raise or clash, is named and skipped; run-time
hooks that raise are named and the run's summary is kept."""

from __future__ import annotations

import importlib
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_harness
from faultkit import cli, install_plugin

from harness import plugin_probe
from harness.errors import RegistryError
from harness.registry import PluginWarning, Registry, get_registry

IMPORT_FAULTS = {
    "fault_sysexit": "failed to load and was skipped: SystemExit: 0",
    "fault_baseexception": "failed to load and was skipped: Boom: boom at import",
    "fault_osexit": "ended its process on import (os._exit(0)",
    "fault_hang": "did not finish importing within 10 s (it hangs",
    "fault_adapters_raise": "its harness_adapters hook raised RuntimeError: adapters hook",
    "fault_signature": "its hooks are malformed",
    "fault_unknown_hook": "unknown hook 'harness_adapter'",
    "fault_malformed": "which is not an adapter class",
    "zz_fault_clash": "'toy/coin' is claimed by two plugins: 'toy'",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("faults")
    site = root / "site"
    install_plugin("harness-toy", site)
    install_plugin("harness-faults", site)
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_CACHE", str(root / "cache"))
    mp.setenv("HARNESS_PLUGIN_IMPORT_TIMEOUT", "10")
    mp.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield site
    mp.undo()
    importlib.invalidate_caches()
    get_registry(refresh=True)


def load(strict: bool = False) -> tuple[Registry, list[str]]:
    reg = Registry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.load_entry_points(strict=strict)
    return reg, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def test_every_faulty_plugin_is_named_and_skipped(site) -> None:
    t0 = time.monotonic()
    reg, messages = load()
    assert time.monotonic() - t0 < 60
    for name, reason in IMPORT_FAULTS.items():
        assert name in reg.broken, (name, sorted(reg.broken))
        assert reason in reg.broken[name], (name, reg.broken[name])
        assert any(f"plugin {name!r} (package harness-faults 0.1.0" in m for m in messages), name
    assert "fault/extra" not in reg.names()  # a skipped plugin adds nothing
    assert reg.adapters["toy/coin"].plugin == "toy"  # the first one keeps its name
    assert "fault/flaky" in reg.names() and "torch/mlp" in reg.names()
    assert not reg.pm.has_plugin("fault_signature") and not reg.pm.has_plugin("zz_fault_clash")


def test_the_import_probe_runs_once_per_version(site, monkeypatch) -> None:
    load()
    calls: list[int] = []
    real = plugin_probe.probe
    monkeypatch.setattr(plugin_probe, "probe", lambda e: calls.append(len(e)) or real(e))
    reg, _ = load()
    assert calls == [] and "fault_hang" in reg.broken  # remembered: no 10 s wait again
    meta = next(site.glob("harness_faults-*.dist-info")) / "METADATA"
    text = meta.read_text()
    meta.write_text(text.replace("Version: 0.1.0", "Version: 0.1.1"))
    try:
        importlib.invalidate_caches()
        reg, _ = load()
        assert calls == [len(IMPORT_FAULTS) + 1]  # every entry point of the new version
        assert "harness-faults 0.1.1" in reg.broken["fault_hang"]
    finally:
        meta.write_text(text)
        importlib.invalidate_caches()


def test_strict_plugins_keeps_a_faulty_plugin_an_error(site) -> None:
    with pytest.raises(RegistryError, match="plugin 'fault_adapters_raise'"):
        load(strict=True)


def test_raising_run_hooks_are_named_and_the_summary_is_kept(site, tmp_path: Path,
                                                             capsys) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        get_registry(refresh=True)
    spec = tmp_path / "toy.yaml"
    spec.write_text("name: toy\nseeds: [0]\ndatasets:\n  coin: {use: toy/coin, n: 50}\n"
                    "methods:\n  count: toy/count\nmetrics: [toy/head-rate]\n")
    out = tmp_path / "o"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli("run", str(spec), "--out", str(out)) == 0
        assert cli("report", str(out)) == 0
    messages = [str(w.message) for w in caught]
    for hook, exc in (("harness_cell_finished", "RuntimeError"),
                      ("harness_run_finished", "SystemExit"),
                      ("harness_executors", "RuntimeError"),
                      ("harness_report_sections", "ValueError")):
        assert any(m.startswith("plugin 'fault_run_hooks' (package harness-faults 0.1.0): "
                                f"its {hook} hook raised {exc}") for m in messages), hook
    assert json.loads((out / "summary.json").read_text())["cells"][0]["status"] == "ok"
    assert (out / "report.html").is_file()
    assert "1 ran, 0 reused, 0 failed" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_survives_every_faulty_plugin(site, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(site), "HARNESS_CACHE": str(tmp_path / "cache"),
           "HARNESS_PLUGIN_IMPORT_TIMEOUT": "10"}
    res = run_harness("list", "datasets", env=env, timeout=120)
    assert res.returncode == 0, res
    assert "toy/coin" in res.stdout and "Traceback" not in res.output
    for name in IMPORT_FAULTS:
        assert f"plugin {name!r}" in res.stderr, name
    res = run_harness("--strict-plugins", "list", env=env, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.output
