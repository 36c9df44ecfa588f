"""The plan reuses data fingerprints from the disk cache: a fully recorded spec is planned
without loading its data, a stale entry is corrected by the cell that runs, and datasets
that read files are loaded again only when a file they name changes."""

from __future__ import annotations

import json
import os
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


def test_datasets_that_read_files_are_not_pure_functions_of_their_config() -> None:
    registry = get_registry()
    for name in ("bigbench/task", "xlingual/folder", "xlingual/multiemo",
                 "xlingual/chatterbot", "rxrx1/images"):
        assert registry.adapters[name].cls.fingerprint_cacheable is False, name
    assert registry.adapters["sklearn/iris"].cls.fingerprint_cacheable is True


TASK = {"canary": "c", "name": "tiny", "description": "d", "keywords": ["k"],
        "metrics": ["multiple_choice_grade"], "preferred_score": "multiple_choice_grade",
        "examples": [{"input": f"q{i}", "target_scores": {"yes": i % 2, "no": 1 - i % 2}}
                     for i in range(4)]}


def _bigbench_spec(tasks: Path) -> str:
    return f"""\
name: fp-files
seeds: [0]
datasets:
  tiny: {{use: bigbench/task, task: tiny, tasks_dir: {tasks}, sources: [folder]}}
models:
  dummy: lm/dummy
methods:
  zero: {{use: bigbench/evaluate, shots: 0}}
metrics: [bigbench/metrics]
"""


def _corpus_spec(folder: Path) -> str:
    return f"""\
name: fp-corpus
seeds: [0]
datasets:
  toy: {{use: xlingual/folder, path: {folder}, languages: [en, it]}}
models:
  dummy: lm/dummy
methods:
  icl: {{use: xlingual/icl, shots: [1]}}
"""


def _write_task(tasks: Path, examples: int = 2) -> Path:
    (tasks / "tiny").mkdir(parents=True, exist_ok=True)
    task = {**TASK, "examples": TASK["examples"][:examples]}
    path = tasks / "tiny" / "task.json"
    path.write_text(json.dumps(task))
    return path


def _write_corpus(root: Path, extra: str = "") -> Path:
    for lang in ("en", "it"):
        (root / lang).mkdir(parents=True, exist_ok=True)
        (root / lang / "pos.txt").write_text("good\nfine\n" + extra)
        (root / lang / "neg.txt").write_text("bad\npoor\n" + extra)
    return root / "it" / "pos.txt"


@pytest.mark.parametrize("kind", ["bigbench", "corpus"])
def test_a_dataset_that_names_its_files_is_loaded_again_only_when_they_change(
        kind: str, write_spec, tmp_path: Path, loads: list[str]) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    if kind == "bigbench":
        data = _write_task(tmp_path / "tasks")
        spec = write_spec(_bigbench_spec(tmp_path / "tasks"))
    else:
        data = _write_corpus(tmp_path / "corpus")
        spec = write_spec(_corpus_spec(tmp_path / "corpus"))
    first = _plan(spec, out, cache).cells[0].data_fingerprint
    assert len(loads) == 1 and first not in ("unloadable", "none")
    entries = list((cache / datacache.FINGERPRINTS_DIR).glob("*.json"))
    named = json.loads(entries[0].read_text())["inputs"]
    assert len(entries) == 1 and any(str(data).startswith(path) for path, _ in named)

    def again() -> str:
        datacache.clear()
        loads.clear()
        return _plan(spec, out, cache).cells[0].data_fingerprint

    assert again() == first and loads == []  # unchanged files: nothing loaded
    st = data.stat()
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same bytes, newer
    assert again() == first and len(loads) == 1
    assert again() == first and loads == []
    if kind == "bigbench":
        _write_task(tmp_path / "tasks", examples=1)
    else:
        _write_corpus(tmp_path / "corpus", extra="great\n")
    changed = again()
    assert changed != first and len(loads) == 1
    assert again() == changed and loads == []
    data.unlink()  # a file gone: loaded again (a failure is the loader's), never a stale hit
    assert again() not in (first, changed) and len(loads) == 1
