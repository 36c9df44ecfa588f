"""The plan reuses data fingerprints from the disk cache: a fully recorded spec is planned
without loading its data, a stale entry is corrected by the cell that runs, and datasets
that read files are always loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import datacache
from harness.executors import InProcessExecutor
from harness.plan import make_plan
from harness.registry import get_registry
from harness.runner import run_plan
from harness.spec import load_spec

SPEC = """\
name: fp-cache
seeds: [0, 1]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [8]}
methods:
  train: {use: torch/train-classifier, steps: 10}
metrics: [accuracy]
"""


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts dataset loads, with the per-process data cache emptied (a fresh process)."""
    calls: list[str] = []
    real = datacache.load_with_fingerprint

    def counting(component, seed, like):  # type: ignore[no-untyped-def]
        calls.append(f"{component.use}:{seed}")
        return real(component, seed, like)

    datacache.clear()
    monkeypatch.setattr(datacache, "load_with_fingerprint", counting)
    yield calls
    datacache.clear()


def _plan(spec_path: Path, out: Path, cache: Path, force: bool = False):  # type: ignore[no-untyped-def]
    return make_plan(load_spec(spec_path, get_registry()), out, cache, force)


def test_a_recorded_spec_is_planned_without_loading_data(write_spec, tmp_path: Path,
                                                         loads: list[str]) -> None:
    spec, out, cache = write_spec(SPEC), tmp_path / "out", tmp_path / "cache"
    first = _plan(spec, out, cache)
    assert len(loads) == 2 and len({c.data_fingerprint for c in first.cells}) == 2
    run_plan(first, executor=InProcessExecutor())
    datacache.clear()
    loads.clear()
    second = _plan(spec, out, cache)
    assert loads == []  # every fingerprint came from the disk cache
    assert [c.status for c in second.cells] == ["done", "done"]
    assert [c.identity for c in second.cells] == [c.identity for c in first.cells]
    _plan(spec, out, cache, force=True)  # --force never trusts the cache
    assert len(loads) == 2


def test_a_stale_entry_is_corrected_by_the_cell_that_runs(write_spec, tmp_path: Path,
                                                          loads: list[str]) -> None:
    spec, out, cache = write_spec(SPEC), tmp_path / "out", tmp_path / "cache"
    truth = {c.cell_id: c.data_fingerprint for c in _plan(spec, out, cache).cells}
    for entry in (cache / datacache.FINGERPRINTS_DIR).glob("*.json"):
        entry.write_text(json.dumps({"fingerprint": "0" * 16}))  # as if load() had changed
    datacache.clear()
    stale = _plan(spec, out, cache)
    assert {c.data_fingerprint for c in stale.cells} == {"0" * 16}
    run_plan(stale, executor=InProcessExecutor())
    for cell in stale.cells:
        record = json.loads((out / "cells" / cell.cell_id / "record.json").read_text())
        assert record["data_fingerprint"] == truth[cell.cell_id]
        assert record["identity"] != cell.identity
    datacache.clear()
    again = _plan(spec, out, cache)
    assert [c.data_fingerprint for c in again.cells] == [truth[c.cell_id] for c in again.cells]
    assert all(c.status == "done" for c in again.cells)


def test_datasets_that_read_files_are_never_cached() -> None:
    registry = get_registry()
    for name in ("bigbench/task", "xlingual/folder", "rxrx1/images"):
        assert registry.adapters[name].cls.fingerprint_cacheable is False, name
    assert registry.adapters["sklearn/iris"].cls.fingerprint_cacheable is True
