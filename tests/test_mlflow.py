"""The MLflow logger plugin, against a local file store read back with MLflow's client."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import run_harness

from harness.results import ResultsDir

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def client_for(store: Path):  # noqa: ANN201 (mlflow's own type)
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=store.as_uri())


def runs_of(store: Path, experiment: str) -> list:
    client = client_for(store)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def fake_run(root: Path) -> dict:
    results = ResultsDir(root)
    cells = []
    for seed in (0, 1):
        cid = f"d__m__train__seed={seed}"
        record = {"cell_id": cid, "identity": f"id{seed}", "status": "ok",
                  "cell": {"spec": "fake", "name": f"d/m/train/seed={seed}", "group": "d/m/train",
                           "seed": 100 + seed, "spec_seed": seed,
                           "sweep": {"methods.train.lr": 0.1},
                           "dataset": {"use": "sklearn/iris", "test_size": 0.3},
                           "model": {"use": "torch/mlp", "hidden": [8]},
                           "method": {"use": "torch/train-classifier",
                                      "optimizer": {"use": "torch/adam", "lr": 0.1}},
                           "metrics": [{"use": "accuracy"}]},
                  "settings": {"threads": 1, "device": "cpu"},
                  "metrics": {"accuracy": 0.5 + seed / 10}, "timings": {"total_s": 1.0}}
        results.write_record(cid, record)
        (results.cell_dir(cid) / "artifacts").mkdir()
        (results.cell_dir(cid) / "artifacts" / "curve.txt").write_text("1 2 3\n")
        cells.append({"id": cid, "name": record["cell"]["name"]})
    return {"spec": "fake", "cells": cells, "claims": [], "aggregates": {}}


def test_log_run_params_metrics_artifacts(tmp_path: Path) -> None:
    from harness.mlflow_logger import log_run
    summary = fake_run(tmp_path / "out")
    store = tmp_path / "mlruns"
    assert log_run(summary, tmp_path / "out", store.as_uri()) == 2
    runs = sorted(runs_of(store, "fake"), key=lambda r: r.info.run_name)
    assert [r.info.run_name for r in runs] == ["d/m/train/seed=0", "d/m/train/seed=1"]
    first = runs[0]
    assert first.data.metrics["accuracy"] == 0.5 and "harness.total_s" in first.data.metrics
    assert first.data.params["method.optimizer.lr"] == "0.1"
    assert first.data.params["model.hidden"] == "[8]" and first.data.params["seed"] == "100"
    assert first.data.params["sweep.methods.train.lr"] == "0.1"
    assert first.data.tags["harness.identity"] == "id0" and first.info.status == "FINISHED"
    client = client_for(store)
    names = {a.path for a in client.list_artifacts(first.info.run_id)}
    assert {"record.json", "artifacts"} <= names
    assert [a.path for a in client.list_artifacts(first.info.run_id, "artifacts")] == [
        "artifacts/curve.txt"]
    # the same cells again: nothing new is logged
    assert log_run(summary, tmp_path / "out", store.as_uri()) == 0
    assert len(runs_of(store, "fake")) == 2


def test_off_unless_the_user_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.mlflow_logger import harness_run_finished
    monkeypatch.delenv("HARNESS_MLFLOW_URI", raising=False)
    summary = fake_run(tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    harness_run_finished(summary=summary, out_dir=str(tmp_path / "out"))
    assert not (tmp_path / "mlruns").exists()  # nothing logged, not even MLflow's default


@pytest.mark.slow
def test_run_with_mlflow_flag(write_spec, tmp_path: Path) -> None:
    spec = write_spec("name: tiny\nseeds: [0]\ndatasets:\n  iris: {use: sklearn/iris}\n"
                      "models:\n  mlp: {use: torch/mlp, hidden: [4]}\nmethods:\n"
                      "  train: {use: torch/train-classifier, epochs: 1}\nmetrics: [accuracy]\n")
    store = tmp_path / "mlruns"
    env = {"HARNESS_MLFLOW_URI": ""}
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"), "--mlflow",
                      str(store), env=env)
    assert res.returncode == 0, res
    assert "mlflow: logged 1 cell(s)" in res.stderr
    (run,) = runs_of(store, "tiny")
    assert 0 <= run.data.metrics["accuracy"] <= 1 and run.data.params["model.hidden"] == "[4]"
