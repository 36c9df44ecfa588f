"""End-to-end runs through the real `harness` command: records, reuse, verify,
determinism, resume after SIGKILL, executors, show/report/query/schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SPECS, load_summary, run_harness

FAST = """\
name: fast
seeds: [0, 1]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [16]}
methods:
  train: {use: torch/train-classifier, steps: 60, optimizer: {use: torch/adam, lr: 0.01}}
metrics: [accuracy, cross-entropy]
expect:
  - {metric: accuracy, at_least: 0.6}
"""


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("digits") / "out"
    res = run_harness("run", str(SPECS / "digits-mlp.yaml"), "--out", str(out))
    return out, res


def test_digits_spec_passes_and_records_everything(digits_run) -> None:
    out, res = digits_run
    assert res.returncode == 0, res
    assert "PASS" in res.stdout and "FAIL" not in res.stdout
    assert "plugins: harness-bench-" in res.stderr
    summary = load_summary(out)
    assert summary["spec"] == "digits-mlp"
    assert len(summary["cells"]) == 3
    for cell in summary["cells"]:
        assert cell["status"] == "ok"
        assert set(cell) >= {"name", "seed", "params", "status", "metrics"}
        assert 0.9 <= cell["metrics"]["accuracy"] <= 1.0
    agg = summary["aggregates"]["digits/mlp/train"]["accuracy"]
    assert agg["n"] == 3 and agg["ci95"][0] <= agg["mean"] <= agg["ci95"][1]
    assert all(c["passed"] for c in summary["claims"])
    assert summary["claims"][0]["groups"][0]["value"] == pytest.approx(agg["mean"])
    record = json.loads(next((out / "cells").glob("*/record.json")).read_text())
    prov = record["provenance"]
    assert prov["packages"]["torch"].startswith("2.")
    assert {"commit", "dirty"} <= set(prov["git"])
    assert prov["determinism"]["threads"] == 1
    assert prov["determinism"]["deterministic_algorithms"] is True
    assert record["versions"]["torch/mlp"] == "1"
    assert record["data_fingerprint"] and record["identity"]
    assert {"load_s", "run_s", "total_s"} <= set(record["timings"])
    assert record["cell"]["method"]["optimizer"]["use"] == "torch/momentum"


def test_a_record_is_one_line_per_key_json_with_nan_and_inf_spelled_out(tmp_path: Path) -> None:
    from harness.results import ResultsDir
    record = {"status": "ok", "metrics": {"a": 1.5, "b": float("nan"), "c": float("-inf")},
              "cell": {"name": "x/y", "axes": {"point": None}}, "outputs": {"xs": [1, 2]},
              "note": "caf\u00e9 \"quoted\"\nline"}
    ResultsDir(tmp_path).write_record("c1", record)
    text = (tmp_path / "cells" / "c1" / "record.json").read_text()
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}" and len(lines) == len(record) + 2
    assert lines[1] == '  "status": "ok",'
    assert json.loads(text) == {**record, "metrics": {"a": 1.5, "b": "nan", "c": "-inf"}}


def test_second_run_reexecutes_nothing(digits_run) -> None:
    out, _ = digits_run
    before = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/record.json")}
    res = run_harness("run", str(SPECS / "digits-mlp.yaml"), "--out", str(out))
    assert res.returncode == 0, res
    assert "0 ran, 3 reused" in res.stderr
    assert before == {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*/record.json")}


def test_verify_identical(digits_run) -> None:
    out, _ = digits_run
    res = run_harness("verify", str(out))
    assert res.returncode == 0, res
    assert "9/9 metrics identical" in res.stdout


def test_verify_reports_a_difference(digits_run, tmp_path: Path) -> None:
    out, _ = digits_run
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    rec_path = sorted((copy / "cells").glob("*/record.json"))[0]
    rec = json.loads(rec_path.read_text())
    rec["metrics"]["accuracy"] += 0.01
    rec_path.write_text(json.dumps(rec))
    res = run_harness("verify", str(copy))
    assert res.returncode == 1
    assert "DIFFERENT" in res.stdout and "accuracy" in res.stdout and "8/9" in res.stdout


def test_show_json_and_query_and_report(digits_run) -> None:
    out, _ = digits_run
    res = run_harness("show", str(out), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["spec"] == "digits-mlp"
    res = run_harness("query", str(out), "select count(*) from metrics where name='accuracy'")
    assert res.returncode == 0 and res.stdout.splitlines()[1] == "3"
    res = run_harness("report", str(out))
    assert res.returncode == 0, res
    html = (out / "report.html").read_text()
    assert "digits-mlp" in html and "PASS" in html


def test_same_spec_same_numbers(write_spec, tmp_path: Path) -> None:
    spec = write_spec(FAST)
    a = run_harness("run", str(spec), "--out", str(tmp_path / "a"))
    b = run_harness("run", str(spec), "--out", str(tmp_path / "b"))
    assert a.returncode == b.returncode == 0
    ma = [c["metrics"] for c in load_summary(tmp_path / "a")["cells"]]
    mb = [c["metrics"] for c in load_summary(tmp_path / "b")["cells"]]
    assert ma == mb
    assert ma[0] != ma[1]  # seeds differ


@pytest.mark.parametrize("executor", ["pool", "dask"])
def test_parallel_executors_give_the_same_numbers(executor, write_spec, tmp_path: Path) -> None:
    if executor == "dask":
        pytest.importorskip("distributed")
    spec = write_spec(FAST)
    a = run_harness("run", str(spec), "--out", str(tmp_path / "a"))
    b = run_harness("run", str(spec), "--out", str(tmp_path / "b"), "--jobs", "2",
                    "--executor", executor)
    assert a.returncode == b.returncode == 0, b
    key = lambda s: sorted((c["name"], c["metrics"]["accuracy"]) for c in s["cells"])  # noqa: E731
    assert key(load_summary(tmp_path / "a")) == key(load_summary(tmp_path / "b"))


def test_changed_params_rerun_and_force(write_spec, tmp_path: Path) -> None:
    spec = write_spec(FAST)
    out = str(tmp_path / "o")
    assert run_harness("run", str(spec), "--out", out).returncode == 0
    res = run_harness("run", str(spec), "--out", out, "--set", "methods.train.steps=61")
    assert "2 ran, 0 reused" in res.stderr
    res = run_harness("run", str(spec), "--out", out, "--set", "methods.train.steps=61")
    assert "0 ran, 2 reused" in res.stderr
    res = run_harness("run", str(spec), "--out", out, "--set", "methods.train.steps=61", "--force")
    assert "2 ran, 0 reused" in res.stderr


def test_failing_claim_exits_1(write_spec, tmp_path: Path) -> None:
    spec = write_spec(FAST.replace("at_least: 0.6", "at_least: 1.01"))
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"))
    assert res.returncode == 1
    assert "FAIL" in res.stdout
    assert load_summary(tmp_path / "o")["claims"][0]["passed"] is False


def test_crashing_adapter_is_recorded_and_the_sweep_goes_on(write_spec, tmp_path: Path) -> None:
    # optimizer lr given as a negative via a custom set is rejected by validation; instead
    # make the model output size mismatch: cross-entropy over a wrong target key crashes
    spec = write_spec(FAST.replace("metrics: [accuracy, cross-entropy]",
                                   "metrics: [accuracy, {use: accuracy, logits: train_logits, "
                                   "targets: test_targets, name: broken}]"))
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"))
    assert res.returncode == 1, res
    assert "Traceback" not in res.output
    summary = load_summary(tmp_path / "o")
    assert [c["status"] for c in summary["cells"]] == ["failed", "failed"]
    rec = json.loads(next((tmp_path / "o" / "cells").glob("*/record.json")).read_text())
    assert "Traceback" in rec["error"]["traceback"]
    assert set(rec["metrics"]) == {"accuracy"}  # the metric that did not raise is kept


def test_schema_is_valid_and_accepts_the_shipped_specs() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from harness.yamlfile import read_yaml_file  # YAML 1.2-like keys: `on:` stays text
    res = run_harness("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "adapter:torch/mlp" in schema["$defs"]
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(read_yaml_file(SPECS / "digits-mlp.yaml").data)
    bad = read_yaml_file(SPECS / "digits-mlp.yaml").data
    bad["models"]["mlp"]["hiden"] = [3]
    assert list(validator.iter_errors(bad))


def test_list_shows_package_and_version() -> None:
    res = run_harness("list", "models")
    assert res.returncode == 0
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("torch/mlp"))
    assert "harness-bench" in line and "0.1.0" in line
    assert "sklearn/digits" not in res.stdout


SLOW_SWEEP = FAST.replace("steps: 60", "steps: 400").replace(
    "seeds: [0, 1]", "seeds: [0, 1, 2, 3, 4, 5]")


@pytest.mark.slow
def test_resume_after_sigkill(write_spec, tmp_path: Path) -> None:
    spec = write_spec(SLOW_SWEEP)
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(spec), "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("cells/*/record.json"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("cells/*/record.json")))
    assert 2 <= done_before < 6, "the kill should land mid-sweep"
    for path in out.rglob("*.json"):
        json.loads(path.read_text())  # every JSON file that exists is complete
    res = run_harness("run", str(spec), "--out", str(out))
    assert res.returncode == 0, res
    assert f"{6 - done_before} ran, {done_before} reused" in res.stderr
    records = list(out.glob("cells/*/record.json"))
    assert len(records) == 6
    names = [json.loads(p.read_text())["cell"]["name"] for p in records]
    assert len(set(names)) == 6
    assert not list(out.rglob("*.tmp"))
    summary = load_summary(out)
    assert [c["status"] for c in summary["cells"]] == ["ok"] * 6


def test_a_write_cut_short_is_cleaned_up_when_its_cell_runs_again(write_spec,
                                                                 tmp_path: Path) -> None:
    # a process killed mid-write leaves its temporary file beside the record it never wrote
    spec = write_spec(FAST)
    out = tmp_path / "o"
    assert run_harness("run", str(spec), "--out", str(out)).returncode == 0
    cell = sorted(out.glob("cells/*/record.json"))[0].parent
    (cell / "record.json").unlink()
    for name in (".record.json.k1ll3d.tmp", ".examples.jsonl.k1ll3d.tmp"):
        (cell / name).write_text('{"half')
    res = run_harness("run", str(spec), "--out", str(out))
    assert res.returncode == 0, res
    assert "1 ran, 1 reused" in res.stderr
    assert not list(out.rglob("*.tmp"))


TWINS = """\
name: twins
seeds: [0]
datasets:
  iris: {use: sklearn/iris}
models:
  mlp: {use: torch/mlp, hidden: [16]}
methods:
  a: {use: torch/train-classifier, steps: 30}
  b: {use: torch/train-classifier, steps: 30}
metrics: [accuracy, {use: cross-entropy, where: {method: b}}]
"""


def test_metric_where_and_common_random_numbers(write_spec, tmp_path: Path) -> None:
    spec = write_spec(TWINS)
    res = run_harness("run", str(spec), "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res
    cells = {c["axes"]["method"]: c["metrics"] for c in load_summary(tmp_path / "o")["cells"]}
    assert "cross_entropy" not in cells["a"] and "cross_entropy" in cells["b"]
    unpaired = [json.loads(p.read_text())["cell"]["seed"]
                for p in (tmp_path / "o").glob("cells/*/record.json")]
    assert unpaired[0] != unpaired[1]  # by default each cell has its own seed
    res = run_harness("run", str(spec), "--out", str(tmp_path / "p"),
                      "--set", "settings.common_random_numbers=true")
    assert res.returncode == 0, res
    paired = {c["axes"]["method"]: c["metrics"] for c in load_summary(tmp_path / "p")["cells"]}
    # paired: the same initialization and random stream, so identical methods agree exactly
    assert paired["a"]["accuracy"] == paired["b"]["accuracy"]
    recs = [json.loads(p.read_text()) for p in (tmp_path / "p").glob("cells/*/record.json")]
    assert recs[0]["cell"]["paired_seeds"] == recs[1]["cell"]["paired_seeds"]
    assert run_harness("verify", str(tmp_path / "p")).returncode == 0
