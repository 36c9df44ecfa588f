"""Bad input is a first-class case: every case exits 2, prints no traceback, and names
the place (file:line and key path) and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_harness

GOOD = """\
name: ok
seeds: [0]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [8]}
methods:
  train: {use: torch/train-classifier, steps: 5}
metrics: [accuracy]
"""

# (id, spec text, extra CLI args, substrings the message must contain)
CASES = [
    ("malformed-yaml", "name: x\nmethods:\n  train: {use: a\n  b: c\n", [],
     ["spec.yaml:4", "invalid YAML"]),
    ("duplicate-key", GOOD.replace("seeds: [0]\n", "seeds: [0]\nseeds: [1]\n"), [],
     ["spec.yaml:3", "duplicate key 'seeds'", "first given at line 2"]),
    ("unknown-top-key", GOOD.replace("metrics:", "metircs:"), [],
     ["spec.yaml:9", "metircs", "unknown key", "did you mean 'metrics'"]),
    ("unknown-adapter", GOOD.replace("sklearn/iris", "sklearn/irs"), [],
     ["spec.yaml:4", "datasets.iris.use", "unknown dataset adapter 'sklearn/irs'",
      "did you mean 'sklearn/iris'"]),
    ("wrong-type-seeds", GOOD.replace("seeds: [0]", "seeds: zero"), [],
     ["spec.yaml:2", "seeds", "valid list"]),
    ("wrong-param-type", GOOD.replace("hidden: [8]", "hidden: eight"), [],
     ["spec.yaml:6", "models.mlp.hidden", "valid list", "torch/mlp"]),
    ("unknown-param", GOOD.replace("hidden: [8]", "hiden: [8]"), [],
     ["spec.yaml:6", "models.mlp.hiden", "did you mean 'hidden'"]),
    ("negative-param", GOOD.replace("steps: 5", "steps: -5"), [],
     ["spec.yaml:8", "methods.train.steps", "greater than or equal to 1"]),
    ("missing-use", GOOD.replace("{use: torch/mlp, hidden: [8]}", "{hidden: [8]}"), [],
     ["spec.yaml:6", "models.mlp", "use"]),
    ("wrong-kind", GOOD.replace("{use: sklearn/iris}", "{use: torch/mlp}"), [],
     ["spec.yaml:4", "datasets.iris.use", "is a model adapter"]),
    ("nested-unknown", GOOD.replace("steps: 5}", "steps: 5, optimizer: torch/adamw}"), [],
     ["spec.yaml:8", "methods.train.optimizer", "did you mean 'torch/adam'"]),
    ("nested-param-typo", GOOD.replace("steps: 5}", "steps: 5, optimizer: {use: torch/sgd, "
                                                    "lr: 0.1, momentun: 0.9}}"), [],
     ["spec.yaml:8", "methods.train.optimizer.momentun", "did you mean 'momentum'"]),
    ("empty-file", "", [], ["spec.yaml:1", "empty"]),
    ("top-level-list", "- a\n- b\n", [], ["spec.yaml:1", "mapping"]),
    ("no-methods", "name: x\ndatasets:\n  iris: {use: sklearn/iris}\n", [],
     ["spec.yaml:1", "methods", "missing required key"]),
    ("bad-name", GOOD.replace("name: ok", "name: has space"), [],
     ["spec.yaml:1", "name", "letters, digits"]),
    ("claim-unknown-name", GOOD + "expect:\n  - {metric: accuracy, lhs: mpl, rhs: mlp, "
                                  "ratio_at_least: 1}\n", [],
     ["spec.yaml:11", "expect[0].lhs", "did you mean 'mlp'"]),
    ("claim-no-bound", GOOD + "expect:\n  - {metric: accuracy}\n", [],
     ["spec.yaml:11", "expect[0]", "needs a bound"]),
    ("claim-unknown-axis", GOOD + "expect:\n  - {metric: accuracy, where: {modle: mlp}, "
                                  "at_least: 0.5}\n", [],
     ["spec.yaml:11", "expect[0].where.modle", "did you mean 'model'"]),
    ("sweep-bad-root", GOOD + "sweep:\n  train.steps: [1, 2]\n", [],
     ["spec.yaml:11", "sweep.train.steps", "must start with"]),
    ("sweep-missing-component", GOOD + "sweep:\n  methods.trian.steps: [1, 2]\n", [],
     ["spec.yaml:11", "sweep.methods.trian.steps", "did you mean 'train'"]),
    ("sweep-bad-value", GOOD + "sweep:\n  methods.train.steps: [1, many]\n", [],
     ["spec.yaml:11", "methods.train.steps", "valid integer"]),
    ("set-bad-path", GOOD, ["--set", "methods.trian.steps=3"],
     ["--set methods.trian.steps=3", "did you mean 'train'"]),
    ("set-no-equals", GOOD, ["--set", "methods.train.steps"], ["--set", "PATH=VALUE"]),
    ("set-bad-type", GOOD, ["--set", "methods.train.steps=lots"],
     ["--set methods.train.steps=lots", "methods.train.steps", "valid integer"]),
    ("seeds-bad", GOOD, ["--seeds", "0,x"], ["--seeds", "integers"]),
    ("filter-empty", GOOD + "cells:\n  only: [{model: mlp}]\n  exclude: [{dataset: iris}]\n",
     [], ["cells", "no cells"]),
    ("filter-typo", GOOD + "cells:\n  only: [{model: mpl}]\n", [],
     ["spec.yaml:11", "cells.only[0].model", "no model named 'mpl'", "did you mean 'mlp'"]),
    ("unknown-executor", GOOD, ["--executor", "cluster9"], ["unknown executor 'cluster9'"]),
    ("yaml-on-key", GOOD + "expect:\n  - {metric: accuracy, at_least: 0.1, on: everywhere}\n",
     [], ["spec.yaml:11", "expect[0].on", "'mean' or 'each_seed'"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_exits_2_with_location(case, tmp_path: Path) -> None:
    _, text, extra, expected = case
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    res = run_harness("run", str(spec), "--out", str(tmp_path / "out"), *extra)
    assert res.returncode == 2, res
    assert "Traceback" not in res.output, res
    for needle in expected:
        assert needle in res.output, f"{needle!r} not in:\n{res.output}"
    assert not (tmp_path / "out" / "cells").exists()


def test_missing_file(tmp_path: Path) -> None:
    res = run_harness("validate", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and "Traceback" not in res.output
    assert "nope.yaml: file not found" in res.output


def test_spec_is_a_folder(tmp_path: Path) -> None:
    res = run_harness("validate", str(tmp_path))
    assert res.returncode == 2 and "folder" in res.output and "Traceback" not in res.output


def test_not_utf8(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"name: \xff\xfe\n")
    res = run_harness("validate", str(spec))
    assert res.returncode == 2 and "UTF-8" in res.output and "Traceback" not in res.output


def test_extends_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    res = run_harness("validate", str(tmp_path / "a.yaml"))
    assert res.returncode == 2 and "Traceback" not in res.output
    assert "cycle" in res.output and "a.yaml" in res.output and "b.yaml" in res.output


def test_extends_missing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nextends: base.yaml\n")
    res = run_harness("validate", str(tmp_path / "a.yaml"))
    assert res.returncode == 2 and "a.yaml:2" in res.output and "base.yaml" in res.output


def test_several_errors_reported_together(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD.replace("hidden: [8]", "hiden: [8]").replace("steps: 5", "stepz: 5"))
    res = run_harness("validate", str(spec))
    assert res.returncode == 2
    assert "models.mlp.hiden" in res.output and "methods.train.stepz" in res.output


def test_show_missing_folder(tmp_path: Path) -> None:
    res = run_harness("show", str(tmp_path / "none"))
    assert res.returncode == 2 and "not found" in res.output and "Traceback" not in res.output


def test_show_corrupt_summary_names_file_and_fix(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"spec": "x", "cells": [')
    res = run_harness("show", str(tmp_path))
    assert res.returncode == 2 and "Traceback" not in res.output
    assert "summary.json" in res.output and "corrupt" in res.output and "harness run" in res.output


def test_corrupt_record_is_set_aside_and_rerun(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD)
    out = tmp_path / "out"
    assert run_harness("run", str(spec), "--out", str(out)).returncode == 0
    record = next((out / "cells").glob("*/record.json"))
    record.write_text("{ half a rec")
    res = run_harness("run", str(spec), "--out", str(out))
    assert res.returncode == 0, res
    assert "1 ran" in res.output
    json.loads(record.read_text())  # rewritten, valid
    kept = list(record.parent.glob("record.corrupt-*.json"))
    assert len(kept) == 1 and kept[0].read_text() == "{ half a rec"  # nothing lost


def test_user_error_inside_a_cell_exits_2_and_keeps_other_cells(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(GOOD.replace("  mlp: {use: torch/mlp, hidden: [8]}\n",
                                 "  mlp: {use: torch/mlp, hidden: [8]}\n  cnn: {use: torch/cnn}\n"))
    out = tmp_path / "out"
    res = run_harness("run", str(spec), "--out", str(out))
    assert res.returncode == 2, res
    assert "Traceback" not in res.output
    assert "torch/cnn needs image data" in res.output
    summary = json.loads((out / "summary.json").read_text())
    status = {c["name"]: c["status"] for c in summary["cells"]}
    assert status == {"iris/mlp/train/seed=0": "ok", "iris/cnn/train/seed=0": "failed"}
