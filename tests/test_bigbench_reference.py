"""Few-shot prompts against BIG-bench's own code, run from the bigbench 1.0.0 sdist.

``bigbench/api/json_task.py`` is extracted from the sdist the harness caches (its SHA-256
checked against the pinned digest) and imported with stand-ins for what it imports but
does not need here (TensorFlow, the metric and result modules, the gfile JSON reader).
BIG-bench's ``JsonTask`` then evaluates each task at 1 and 3 shots with a recording model,
so its ``evaluate_fixed_shot`` call site, ``make_nshot_dataset`` and ``default_format_fn``
all run; the harness must send the same prompts, choices and targets, in the same order.
Skips when the sdist is not in the cache or ../shared is absent.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import sys
import tarfile
import types
from pathlib import Path
from typing import Any

import pytest
from harness_adapters.bigbench.evaluate import Evaluate
from harness_adapters.bigbench.source import PINNED
from harness_adapters.bigbench.task import load_task
from harness_adapters.lm.dummy import DummyLM

from harness import RunContext
from harness.cli import default_cache
from harness.fingerprint import file_sha256

MEMBER = "bigbench-1.0.0/bigbench/api/json_task.py"
STUBBED = ("tensorflow", "tensorflow.compat", "tensorflow.compat.v1", "bigbench",
           "bigbench.api", "bigbench.api.json_utils", "bigbench.api.task",
           "bigbench.api.task_metrics", "bigbench.api.results")


class FileJsonUtils:
    """The gfile reader's behaviour on local files: ``task.json`` one folder down, keyed
    by folder name; JSON read into ordered dicts."""

    def get_subdir_json_file_paths(self, base_dir: str) -> dict[str, str]:
        base = Path(base_dir).expanduser().resolve()
        return {d.name: str(d / "task.json") for d in base.iterdir()
                if d.is_dir() and (d / "task.json").is_file()}

    def load_json_file(self, filepath: str) -> collections.OrderedDict:
        with open(filepath, "rb") as f:
            return json.load(f, object_pairs_hook=collections.OrderedDict)


def _stubs() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in STUBBED}
    tf = mods["tensorflow.compat.v1"]
    tf.logging = types.SimpleNamespace(info=lambda *a, **k: None)  # type: ignore[attr-defined]
    mods["tensorflow"].compat = mods["tensorflow.compat"]  # type: ignore[attr-defined]
    mods["tensorflow.compat"].v1 = tf  # type: ignore[attr-defined]
    api = mods["bigbench.api"]
    mods["bigbench"].api = api  # type: ignore[attr-defined]
    utils = mods["bigbench.api.json_utils"]
    utils.JsonUtils = FileJsonUtils  # type: ignore[attr-defined]
    utils.get_default_json_utils = FileJsonUtils  # type: ignore[attr-defined]
    task = mods["bigbench.api.task"]
    task.Task = type("Task", (), {})  # type: ignore[attr-defined]
    task.TaskMetadata = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    task.ScoreData = lambda *a, **kw: (a, kw)  # type: ignore[attr-defined]
    for name in ("json_utils", "task", "task_metrics", "results"):
        setattr(api, name, mods[f"bigbench.api.{name}"])
    return mods


def sdist_path() -> Path:
    url, _ = PINNED["1.0.0"]
    return default_cache() / "bigbench" / "downloads" / url.rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def bigbench_json_task(tmp_path_factory: pytest.TempPathFactory) -> types.ModuleType:
    """BIG-bench's own ``api/json_task.py``, imported from the cached sdist."""
    archive = sdist_path()
    if not archive.is_file():
        pytest.skip(f"bigbench 1.0.0 sdist not in the harness cache ({archive}); "
                    "any bigbench/task run with download: true fetches it")
    if file_sha256(archive) != PINNED["1.0.0"][1]:
        pytest.skip(f"{archive} does not have the pinned SHA-256")
    folder = tmp_path_factory.mktemp("bigbench_sdist")
    with tarfile.open(archive, "r:gz") as tar:
        data = tar.extractfile(MEMBER)
        assert data is not None
        (folder / "json_task.py").write_bytes(data.read())
    spec = importlib.util.spec_from_file_location("bigbench_reference_json_task",
                                                  folder / "json_task.py")
    assert spec is not None and spec.loader is not None
    saved = {name: sys.modules.get(name) for name in STUBBED}
    sys.modules.update(_stubs())
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod
    return module


class RecordingModel:
    """BIG-bench's model interface; records every query (inputs and targets)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], Any]] = []

    def cond_log_prob(self, inputs: list[str], targets: list[Any],
                      absolute_normalization: bool = False) -> list[list[float]]:
        self.calls.append(("score", list(inputs), [list(t) for t in targets]))
        return [[-1.0 - j for j in range(len(t))] for t in targets]

    def generate_text(self, inputs: list[str], stop_string: str | None = None,
                      output_regex: str | None = None) -> list[str]:
        self.calls.append(("generate", list(inputs), None))
        return ["" for _ in inputs]


def bigbench_queries(module: types.ModuleType, task_dir: Path, shots: int,
                     max_examples: int | None) -> list[tuple[str, list[str], Any]]:
    task = module.JsonTask(str(task_dir / "task.json"), shot_list=[shots],
                           max_examples=max_examples)
    model = RecordingModel()
    task.evaluate_model(model, score=False, max_examples=max_examples)
    return model.calls


def harness_queries(task_dir: Path, shots: int, max_examples: int | None, tmp_path: Path
                    ) -> tuple[list[tuple[str, list[str], Any]], list[dict[str, Any]]]:
    """The same queries from the harness: per leaf, the choices scored, the prompts
    generated from and the targets scored, as ``bigbench/evaluate`` sends them."""
    task = load_task(task_dir, max_examples=max_examples, max_shots=shots)
    lm = DummyLM()
    out = Evaluate(Evaluate.Params(shots=shots)).run(
        RunContext(seed=0, work_dir=tmp_path), task, lm)
    calls: list[tuple[str, list[str], Any]] = []
    for leaf in task.leaves():
        rows = [r for r in out["examples"] if r["task"] == leaf.name]
        prompts = [r["prompt"] for r in rows]
        if leaf.multiple_choice_metrics:
            calls.append(("score", prompts, [r["choices"] for r in rows]))
        if leaf.generative_metrics:
            calls.append(("generate", prompts, None))
        if leaf.scoring_metrics:
            calls.append(("score", prompts, [r["target"] for r in rows]))
    return calls, out["examples"]


CASES = [  # task, max_examples: multiple choice, generation, several targets, subtasks
    ("intent_recognition", None),
    ("emoji_movie", None),
    ("simple_arithmetic_multiple_targets_json", None),
    ("simple_arithmetic_json_subtasks", None),
    ("logical_deduction", None),
    ("conlang_translation", None),
    ("conlang_translation", 50),
    ("winowhy", 60),
    ("intent_recognition", 100),
]


@pytest.mark.realdata
@pytest.mark.parametrize("shots", [1, 3])
@pytest.mark.parametrize(("task", "max_examples"), CASES)
def test_few_shot_queries_equal_bigbench(task: str, max_examples: int | None, shots: int,
                                         bigbench_json_task: types.ModuleType,
                                         bigbench_dir: Path, tmp_path: Path) -> None:
    task_dir = bigbench_dir / "tasks" / task
    want = bigbench_queries(bigbench_json_task, task_dir, shots, max_examples)
    got, rows = harness_queries(task_dir, shots, max_examples, tmp_path)
    assert [(kind, len(inputs)) for kind, inputs, _ in got] == \
        [(kind, len(inputs)) for kind, inputs, _ in want]
    for (kind, inputs, targets), (_, ref_inputs, ref_targets) in zip(got, want, strict=True):
        differ = [i for i, (a, b) in enumerate(zip(inputs, ref_inputs, strict=True)) if a != b]
        assert not differ, f"{task} {shots}-shot: {len(differ)} prompts differ, first " \
            f"#{differ[0]}:\n{inputs[differ[0]]!r}\nBIG-bench:\n{ref_inputs[differ[0]]!r}"
        assert targets == ref_targets, f"{task} {shots}-shot: {kind} targets differ"
    # the queries come in BIG-bench's random order; `example` names each one's file index
    leaf0 = [r for r in rows if r["task"] == rows[0]["task"]]
    assert sorted(r["example"] for r in leaf0) == sorted(set(r["example"] for r in leaf0))
    if max_examples is None and len(leaf0) > 3:
        assert [r["example"] for r in leaf0] != sorted(r["example"] for r in leaf0)


@pytest.mark.realdata
def test_zero_shot_keeps_the_file_order(bigbench_json_task: types.ModuleType,
                                        bigbench_dir: Path, tmp_path: Path) -> None:
    task_dir = bigbench_dir / "tasks" / "emoji_movie"
    want = bigbench_queries(bigbench_json_task, task_dir, 0, None)
    got, rows = harness_queries(task_dir, 0, None, tmp_path)
    assert [c[1] for c in got] == [c[1] for c in want]
    assert [r["example"] for r in rows] == list(range(len(rows)))


def test_sdist_location_follows_the_harness_cache(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    assert sdist_path() == tmp_path / "bigbench" / "downloads" / "bigbench-1.0.0.tar.gz"
    assert os.path.basename(PINNED["1.0.0"][0]) == "bigbench-1.0.0.tar.gz"
