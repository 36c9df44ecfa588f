"""A run hands out its longest cells first, by the durations earlier runs remembered."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from harness import durations
from harness.executors import InProcessExecutor
from harness.registry import get_registry
from harness.runner import run_spec
from harness.spec import load_spec

SPEC = """\
name: order
seeds: [0]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [16]}
methods:
  short: {use: torch/train-classifier, steps: 2}
  long: {use: torch/train-classifier, steps: 1500}
  middle: {use: torch/train-classifier, steps: 300}
metrics: [accuracy]
"""


def cell(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, config={"name": name})


def test_unseen_cells_first_in_their_order_then_the_longest() -> None:
    cells = [cell(n) for n in ("a", "b", "c", "d", "e")]
    seconds = {durations.key({"name": "a"}): 1.0, durations.key({"name": "c"}): 5.0,
               durations.key({"name": "d"}): 1.0}
    assert [c.name for c in durations.longest_first(cells, seconds)] == ["b", "e", "c", "a", "d"]
    assert [c.name for c in durations.longest_first(cells, {})] == ["a", "b", "c", "d", "e"]


def test_the_file_is_a_hint_never_an_error(tmp_path: Path) -> None:
    assert durations.known(tmp_path) == {}
    (tmp_path / durations.FILE).write_text("{not json")
    assert durations.known(tmp_path) == {}
    (tmp_path / durations.FILE).write_text("[1, 2]")
    assert durations.known(tmp_path) == {}
    (tmp_path / durations.FILE).write_text(json.dumps({"a": 2.5, "b": "x", "c": -1, "d": True}))
    assert durations.known(tmp_path) == {"a": 2.5}
    durations.remember(tmp_path, {"e": 1.0, "a": 3.0})
    assert durations.known(tmp_path) == {"a": 3.0, "e": 1.0}
    durations.remember(tmp_path / "missing" / "deeper", {"a": 1.0})  # created
    assert durations.known(tmp_path / "missing" / "deeper") == {"a": 1.0}
    blocker = tmp_path / "file"
    blocker.write_text("")
    durations.remember(blocker, {"a": 1.0})  # cannot write under a file: ignored


def test_a_second_run_starts_the_longest_cell_first_with_the_same_numbers(
        write_spec, tmp_path: Path) -> None:
    path = write_spec(SPEC)
    cache = tmp_path / "cache"

    def run(out: str) -> tuple[list[str], dict[str, dict[str, float]]]:
        started: list[str] = []

        def on_event(kind: str, info: dict) -> None:
            if kind == "step" and info["label"] == "start":
                started.append(info["cell"])

        run_spec(load_spec(path, get_registry()), tmp_path / out,
                 executor=InProcessExecutor(), cache_dir=cache, on_event=on_event)
        records = [json.loads(p.read_text()) for p in (tmp_path / out).glob("cells/*/record.json")]
        return started, {r["cell"]["name"]: r["metrics"] for r in records}

    first, numbers_first = run("first")
    assert [n.split("/")[2] for n in first] == ["short", "long", "middle"]  # the spec's order
    second, numbers_second = run("second")  # another folder: every cell runs again
    assert [n.split("/")[2] for n in second] == ["long", "middle", "short"]
    assert numbers_second == numbers_first
