"""Issue 17: a metric that raises keeps the cell's other metrics; a missing optional
dependency names the extra to install (exit 2); finished records of another identity are
set aside, listed by `show`, and brought back instead of re-run.

The CLI runs in-process (``harness.cli.main``) on tiny specs (iris, a few steps)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import add_test_adapters

from harness import CellResult, Method, Metric, RunContext
from harness.cli import main
from harness.extras import extra_for_module, requirement_extras
from harness.registry import get_registry

SPEC = """\
name: cf
seeds: [0]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [4]}
methods:
  train: {use: torch/train-classifier, steps: 2}
metrics: [accuracy, test/raises, cross-entropy]
"""


class Raises(Metric):
    """test-only: a metric with a bug"""

    name = "test/raises"
    outputs = ("never",)

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        raise ZeroDivisionError("the metric's bug")


class NeedsGym(Method):
    """test-only: a method that imports an optional dependency (made missing)"""

    name = "test/needs-gym"

    def run(self, ctx: RunContext, data, model) -> dict:
        import gymnasium  # noqa: F401
        return {}


@pytest.fixture(scope="module", autouse=True)
def test_adapters():
    add_test_adapters(get_registry(), Raises, NeedsGym)
    yield


def cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    got = capsys.readouterr()
    assert "Traceback" not in got.out + got.err
    return code, got.out + got.err


def test_a_raising_metric_keeps_the_other_metrics(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    code, text = cli(capsys, "run", str(spec), "--out", str(out))
    assert code == 1, text
    (cell_dir,) = (out / "cells").iterdir()
    record = json.loads((cell_dir / "record.json").read_text())
    assert record["status"] == "failed"
    assert set(record["metrics"]) == {"accuracy", "cross_entropy"}  # before and after it
    (err,) = record["metric_errors"]
    assert err["metric"] == "test/raises" and err["type"] == "ZeroDivisionError"
    trace = Path(err["traceback_file"])
    assert trace.parent == cell_dir / "metric-errors"
    assert "ZeroDivisionError: the metric's bug" in trace.read_text()
    assert f"traceback: {trace}" in " ".join(text.split())  # the run says where it is
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cells"][0]["metrics"].keys() == {"accuracy", "cross_entropy"}


def test_extras_come_from_the_installed_metadata() -> None:
    extras = requirement_extras()
    if not extras:
        pytest.skip("harness-bench is not installed as a distribution")
    assert extra_for_module("transformers") == "lm"
    assert extra_for_module("rouge_score") == "lm"
    assert extra_for_module("gymnasium") == "rl"
    assert extra_for_module("dask.distributed") == "distributed"
    assert extra_for_module("no_such_module_anywhere") is None
    assert "all" in extras["transformers"], "the `all` extra installs every optional one"


def test_a_missing_optional_dependency_names_its_extra(tmp_path: Path, capsys,
                                                       monkeypatch) -> None:
    if not requirement_extras():
        pytest.skip("harness-bench is not installed as a distribution")
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # `import gymnasium` now fails
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("torch/train-classifier, steps: 2", "test/needs-gym")
                    .replace(", test/raises", ""))
    code, text = cli(capsys, "run", str(spec), "--out", str(tmp_path / "out"))
    assert code == 2, text
    assert "'gymnasium'" in text and "pip install 'harness-bench[rl]'" in text, text


def test_superseded_records_are_kept_listed_and_restored(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace(", test/raises", "").replace("seeds: [0]", "seeds: [0, 1]"))
    out = tmp_path / "out"
    assert cli(capsys, "run", str(spec), "--out", str(out))[0] == 0
    first = {p.name: json.loads((p / "record.json").read_text())["identity"]
             for p in (out / "cells").iterdir()}
    code, text = cli(capsys, "run", str(spec), "--out", str(out),
                     "--set", "methods.train.steps=3", "--seeds", "0")
    assert code == 0 and "1 finished cell(s) of another identity" in text, text
    aside = list((out / "superseded").glob("*/*/record.json"))
    assert len(aside) == 1 and json.loads(aside[0].read_text())["identity"] in first.values()
    code, text = cli(capsys, "show", str(out))
    assert code == 0 and "superseded" in text and aside[0].parent.parent.name in text, text
    code, text = cli(capsys, "run", str(spec), "--out", str(out))  # the plain run again
    assert code == 0 and "1 restored" in text and "0 ran" in text, text
    now = {p.name: json.loads((p / "record.json").read_text())["identity"]
           for p in (out / "cells").iterdir()}
    assert now == first
    summary = json.loads((out / "summary.json").read_text())
    assert {c["id"]: c["identity"] for c in summary["cells"]} == first
    assert len(summary["superseded"]) == 1  # the steps=3 record, kept in its turn
