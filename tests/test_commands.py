"""The commands people expect, through the real CLI: plan, compare, runs, describe,
show --metrics, verify --quiet, and run's --only / --limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import load_summary, run_harness

from harness.results import ResultsDir

MINI = """\
name: mini
seeds: [0, 1]
datasets:
  iris: {use: sklearn/iris, test_size: 0.3}
  wine: {use: sklearn/wine, test_size: 0.3}
models:
  mlp: {use: torch/mlp, hidden: [8]}
methods:
  train:
    use: torch/train-classifier
    optimizer: {use: torch/adam, lr: 0.01}
    epochs: 2
metrics: [accuracy, cross-entropy, macro-f1]
sweep:
  methods.train.optimizer.lr: [0.01, 0.001]
expect:
  - {id: acc, metric: accuracy, at_least: 0.1}
"""


def agg(values: list[float]) -> dict[str, Any]:
    from harness.stats import summarize
    return summarize(values)


def fake_results(root: Path, spec: str, groups: dict[str, dict[str, list[float]]],
                 claims: list[tuple[str, str]] = ()) -> Path:
    """A results folder with a summary and an index, as a run leaves them."""
    records = []
    for group, metrics in groups.items():
        n = len(next(iter(metrics.values())))
        for seed in range(n):
            name = f"{group}/seed={seed}"
            records.append({"cell_id": name.replace("/", "__"), "identity": "x", "status": "ok",
                            "cell": {"spec": spec, "name": name, "group": group, "spec_seed": seed,
                                     "seed": seed, "axes": {}},
                            "metrics": {m: v[seed] for m, v in metrics.items()},
                            "timings": {"total_s": 1.5}, "finished": f"2026-01-0{seed + 1}T10:00"})
    results = ResultsDir(root)
    results.index(records)
    results.write_summary({
        "spec": spec, "cells": [], "report": [],
        "aggregates": {g: {m: agg(v) for m, v in ms.items()} for g, ms in groups.items()},
        "claims": [{"id": cid, "text": f"claim {cid}", "metric": "accuracy", "quantity": "value",
                    "passed": status == "PASS", "status": status, "groups": []}
                   for cid, status in claims]})
    return root


def test_compare_side_by_side(tmp_path: Path) -> None:
    a = fake_results(tmp_path / "a", "s", {"g1": {"accuracy": [0.8, 0.82, 0.81],
                                                   "loss": [1.0, 1.1, 1.2]},
                                            "g2": {"accuracy": [0.5, 0.52, 0.51]}},
                     [("acc", "PASS"), ("old", "FAIL")])
    b = fake_results(tmp_path / "b", "s", {"g1": {"accuracy": [0.6, 0.61, 0.62],
                                                   "loss": [1.0, 1.1, 1.2]},
                                            "g3": {"accuracy": [0.9]}},
                     [("acc", "FAIL"), ("new", "XFAIL")])
    res = run_harness("compare", str(a), str(b))
    assert res.returncode == 0, res
    line = next(ln for ln in res.stdout.splitlines() if "g1" in ln)
    assert "0.81 ± 0.01 (3)" in line and "0.61 ± 0.01 (3)" in line and "-0.2" in line
    assert "no" in line.split("│")[-2]  # the intervals do not overlap
    assert "different specs" not in res.stdout  # same spec_hash (none) on both sides
    g3 = next(ln for ln in res.stdout.splitlines() if "g3" in ln)
    assert "0.9 ± - (1)" in g3 and "n/a" in g3  # one seed: no std, no interval
    assert "loss" not in res.stdout and "1 more metric" in res.stdout  # claimed ones only
    claims = {ln.split("│")[1].strip(): ln for ln in res.stdout.splitlines()
              if ln.count("│") >= 4 and "claim" not in ln}
    assert "changed" in claims["acc"] and "PASS" in claims["acc"] and "FAIL" in claims["acc"]
    assert "XFAIL" in claims["new"] and "-" in claims["old"]
    res = run_harness("compare", str(a), str(b), "--metrics", "all", "--json")
    data = json.loads(res.stdout)
    rows = {(r["group"], r["metric"]): r for r in data["rows"]}
    assert rows[("g1", "loss")]["overlap"] == "yes" and rows[("g1", "loss")]["diff"] == 0
    assert rows[("g2", "accuracy")]["b"] is None
    res = run_harness("compare", str(a), str(tmp_path / "nope"))
    assert res.returncode == 2 and "results folder not found" in res.stderr
    assert "Traceback" not in res.output


def test_runs_lists_folders_from_their_indexes(tmp_path: Path) -> None:
    fake_results(tmp_path / "r" / "one", "alpha", {"g": {"accuracy": [0.8, 0.9]}},
                 [("acc", "PASS"), ("x", "XFAIL"), ("y", "FAIL")])
    fake_results(tmp_path / "r" / "one" / "controls" / "broken", "alpha",
                 {"g": {"accuracy": [0.1]}})
    fake_results(tmp_path / "r" / "two", "beta", {"g": {"accuracy": [0.5]}})
    res = run_harness("runs", str(tmp_path / "r"))
    assert res.returncode == 0, res
    one = next(ln for ln in res.stdout.splitlines() if "one " in ln or "one│" in ln)
    assert "alpha" in one and "2/2" in one and "2/3" in one and "2026-01-02 10:00" in one
    assert "beta" in res.stdout and "broken" in res.stdout
    rows = json.loads(run_harness("runs", str(tmp_path / "r"), "--json").stdout)
    assert {r["spec"] for r in rows} == {"alpha", "beta"} and len(rows) == 3
    res = run_harness("runs", str(tmp_path / "none"))
    assert res.returncode == 2 and "no such folder" in res.stderr


def test_show_metrics_claimed_first_and_same_layout_in_a_pipe(tmp_path: Path) -> None:
    root = fake_results(tmp_path / "a", "s", {"g": {"accuracy": [0.8], "loss_a": [1.0],
                                                    "loss_b": [2.0]}}, [("acc", "PASS")])
    res = run_harness("show", str(root))
    assert res.returncode == 0, res
    assert "accuracy" in res.stdout and "loss_a" in res.stdout.split("not shown")[1]
    row = next(ln for ln in res.stdout.splitlines() if "accuracy" in ln and "│" in ln)
    assert [c.strip() for c in row.split("│")[3:7]] == ["0.8", "-", "-", "1"]  # n=1: no std
    res = run_harness("show", str(root), "--metrics", "loss_*")
    assert "loss_a" in res.stdout and "loss_b" in res.stdout
    assert not any("accuracy" in ln and "│" in ln for ln in res.stdout.splitlines())


def test_describe_an_adapter() -> None:
    res = run_harness("describe", "torch/train-classifier")
    assert res.returncode == 0, res
    out = res.stdout
    assert "method adapter" in out and "harness-bench" in out and "plugin 'generic'" in out
    assert "optimizer" in out and "component of kind optimizer" in out and "torch/adam" in out
    assert "batch_size" in out and "32" in out and "nested component kinds:" in out
    data = json.loads(run_harness("describe", "macro-f1", "--json").stdout)
    assert data["kind"] == "metric" and "macro_f1" in data["produces"]["outputs"]
    assert {p["name"] for p in data["params"]} >= {"logits", "targets"}
    res = run_harness("describe", "torch/trian-classifier")
    assert res.returncode == 2 and "did you mean 'torch/train-classifier'" in res.stderr


def test_cli_filters_are_checked(write_spec) -> None:
    spec = write_spec(MINI)
    for args, text in ((["--only", "datset=wine"], "unknown axis 'datset'"),
                       (["--only", "dataset=wien"], "did you mean 'wine'"),
                       (["--only", "lr"], "is not AXIS=VALUE"),
                       (["--limit", "0"], "positive number")):
        res = run_harness("plan", str(spec), *args)
        assert res.returncode == 2 and text in res.stderr, res
        assert "Traceback" not in res.output


@pytest.mark.slow
def test_plan_run_only_limit_verify(write_spec, tmp_path: Path) -> None:
    spec = write_spec(MINI)
    out = tmp_path / "o"
    res = run_harness("plan", str(spec), "--out", str(out))
    assert res.returncode == 0, res
    assert "8 cells, 0 done, 8 to run" in res.stdout and "no past record" in res.stdout
    res = run_harness("run", str(spec), "--out", str(out), "--only", "dataset=iris,lr=0.01")
    assert res.returncode == 0, res
    assert "2 ran" in res.stderr
    assert {c["group"] for c in load_summary(out)["cells"]} == {"iris/mlp/train/lr=0.01"}
    data = json.loads(run_harness("plan", str(spec), "--out", str(out), "--json").stdout)
    assert data["done"] == 2 and data["todo"] == 6 and data["unestimated"] == 0
    done = [r for r in data["cells"] if r["status"] == "done"]
    assert {r["estimate_from"] for r in done} == {"this cell's last record"}
    assert data["estimate_s"] > 0
    # --limit: other identities, never mixed with the full cells
    res = run_harness("run", str(spec), "--out", str(out), "--only", "dataset=iris,lr=0.01",
                      "--limit", "10")
    assert res.returncode in (0, 1), res
    assert "2 cell(s) to run, 0 already done" in res.stderr
    record = json.loads(next((out / "cells").glob("iris*lr=0.01*/record.json")).read_text())
    assert record["settings"]["limit"] == 10
    res = run_harness("verify", str(out), "--quiet")
    assert res.returncode == 0, res
    assert res.stdout.strip() == "6/6 metrics identical" and "re-ran" not in res.stderr
