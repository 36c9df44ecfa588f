"""The dask executor on real clusters: a scheduler and worker processes started here with
the `dask scheduler` / `dask worker` programs on loopback, each worker in its own folder
with its own HARNESS_CACHE and no access to the results folder; a worker SIGKILLed
mid-cell, an interrupted submitting side, a worker that lacks a plugin; the submitting
side's checks and writes; the documented dask-jobqueue configuration."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, default_sigint, load_summary, run_harness

distributed = pytest.importorskip("distributed")

PLUGIN = ROOT / "tests" / "plugins" / "harness-spin"
SPEC = """\
name: spin
seeds: [0, 1, 2, 3]
datasets:
  vec: {use: spin/vector, dim: 48}
methods:
  burn: {use: spin/burn, steps: 300, pause_s: 1.5}
metrics: [spin/final]
"""


# -- processes the tests start, and always stop ---------------------------------------------
class Processes:
    """Started processes, each in its own session; stop() ends each group: SIGTERM, a
    bounded wait, then SIGKILL."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], cwd: Path, env: dict[str, str],
              name: str) -> subprocess.Popen[bytes]:
        cwd.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=default_sigint)  # some are sent SIGINT
        log.close()
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "HARNESS_CACHE", "HARNESS_DASK_ADDRESS")}
    return {**env, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
            **extra}


def start_scheduler(procs: Processes, root: Path) -> str:
    sched_file = root / "scheduler.json"
    procs.start([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                 "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                root / "scheduler", clean_env(), "scheduler")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sched_file.exists():
            try:
                return str(json.loads(sched_file.read_text())["address"])
            except (json.JSONDecodeError, KeyError):
                pass
        time.sleep(0.2)
    raise AssertionError(f"the scheduler did not start: {(procs.logs / 'scheduler.log')}")


def start_worker(procs: Processes, address: str, folder: Path, name: str,
                 site: Path | None) -> None:
    """A `dask worker` with one thread, its own working and local directory and cache;
    the plugin is importable only when ``site`` is given."""
    env = clean_env(HARNESS_CACHE=str(folder / "cache"))
    if site is not None:
        env["PYTHONPATH"] = str(site)
    procs.start([sys.executable, "-m", "dask", "worker", address, "--name", name,
                 "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
                 "--local-directory", str(folder), "--no-dashboard", "--death-timeout", "60"],
                folder, env, name)


def wait_for_workers(address: str, n: int) -> list[str]:
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=120)
        return sorted(client.scheduler_info(n_workers=-1)["workers"])


@pytest.fixture(scope="module")
def spin_site(tmp_path_factory) -> Path:
    """The test plugin installed (package and dist-info with its entry point) in a folder
    of its own, as `pip install --target` lays it out."""
    site = tmp_path_factory.mktemp("spin-site")
    shutil.copytree(PLUGIN / "harness_spin", site / "harness_spin")
    info = site / "harness_spin-0.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-spin\nVersion: 0.2.0\n")
    (info / "entry_points.txt").write_text("[harness]\nspin = harness_spin.plugin\n")
    return site


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    group = Processes(logs)
    try:
        yield group
    finally:
        group.stop_all()


def cell_numbers(out: Path) -> list[tuple[str, dict[str, Any]]]:
    return sorted((c["name"], c["metrics"]) for c in load_summary(out)["cells"])


def record_files(out: Path) -> list[Path]:
    return sorted((out / "cells").glob("*/record.json"))


def check_same_files(out: Path, ref: Path) -> None:
    """Artifacts and examples as the in-process run wrote them."""
    for rec_path in record_files(ref):
        cell = rec_path.parent.name
        here, there = out / "cells" / cell, ref / "cells" / cell
        assert (here / "examples.jsonl").read_bytes() == (there / "examples.jsonl").read_bytes()
        for line in (here / "examples.jsonl").read_text().splitlines():
            json.loads(line)
        a, b = np.load(here / "artifacts" / "state.npz"), np.load(there / "artifacts" / "state.npz")
        assert set(a.files) == {"x", "trace"} and all(np.array_equal(a[k], b[k]) for k in a.files)
        assert (here / "artifacts" / "trace.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def started_marker(folders: list[Path]) -> Path | None:
    for folder in folders:
        for path in folder.glob("**/harness-cell-*/cells/*/artifacts/started.txt"):
            return path
    return None


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_two_workers_interrupted_and_killed_runs_give_in_process_numbers(
        spin_site: Path, procs: Processes, tmp_path: Path, write_spec) -> None:
    spec = str(write_spec(SPEC))
    here = {"PYTHONPATH": str(spin_site), "HARNESS_CACHE": str(tmp_path / "cache-here")}
    ref = tmp_path / "ref"
    res = run_harness("run", spec, "--out", str(ref), "--executor", "inprocess", env=here)
    assert res.returncode == 0, res

    address = start_scheduler(procs, tmp_path)
    folders = [tmp_path / "worker-a", tmp_path / "worker-b"]
    for folder in folders:
        start_worker(procs, address, folder, folder.name, spin_site)
    workers = wait_for_workers(address, 2)
    run = [sys.executable, "-m", "harness", "run", spec, "--dask-address", address, "--out"]
    env = {**os.environ, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg", **here}

    # 1. the submitting side interrupted after the first record: it stops cleanly ...
    out = tmp_path / "out"
    harness = procs.start([*run, str(out)], tmp_path, env, "interrupted")
    deadline = time.monotonic() + 180
    while not record_files(out) and harness.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    harness.send_signal(signal.SIGINT)
    assert harness.wait(timeout=60) == 130, (procs.logs / "interrupted.log").read_text()
    before = record_files(out)
    assert 1 <= len(before) < 4
    assert all(json.loads(p.read_text())["status"] == "ok" for p in before)
    # ... and the next run does only the cells left, with the in-process numbers
    res = run_harness(*run[3:], str(out), env=here)
    assert res.returncode == 0, res
    assert f"{4 - len(before)} ran, {len(before)} reused" in res.stderr, res
    assert cell_numbers(out) == cell_numbers(ref)
    check_same_files(out, ref)
    for path in record_files(out):
        worker = json.loads(path.read_text())["worker"]
        assert worker["address"] in workers and worker["host"] and worker["pid"] > 0
    con = sqlite3.connect(out / "index.sqlite")
    assert con.execute("select count(*) from cells where status = 'ok'").fetchone() == (4,)
    con.close()
    for folder in folders:  # the workers kept nothing of the cells and wrote no results
        assert not list(folder.rglob("record.json")) and not list(folder.rglob("harness-cell-*"))

    # 2. a worker SIGKILLed mid-cell: the cell runs again elsewhere, nothing is lost
    out = tmp_path / "killed"
    harness = procs.start([*run, str(out)], tmp_path, env, "killed")
    deadline = time.monotonic() + 180
    while (marker := started_marker(folders)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker is not None, (procs.logs / "killed.log").read_text()
    pid = 0
    while not pid and time.monotonic() < deadline:
        text = marker.read_text().strip()
        pid = int(text) if text else 0
    os.kill(pid, signal.SIGKILL)
    assert harness.wait(timeout=240) == 0, (procs.logs / "killed.log").read_text()
    log = (procs.logs / "killed.log").read_text()
    assert sum(line.startswith("[") and "/4] " in line for line in log.splitlines()) == 4, log
    records = [json.loads(p.read_text()) for p in record_files(out)]
    assert len(records) == 4 and len({r["cell_id"] for r in records}) == 4
    assert all(r["status"] == "ok" and r["worker"]["pid"] != pid for r in records)
    assert cell_numbers(out) == cell_numbers(ref)
    check_same_files(out, ref)
    json.loads((out / "summary.json").read_text())

    # 3. cells past --timeout: recorded as failed, their workers restarted, the run ends
    from harness.plan import CellPlan
    if "timeout_s" not in CellPlan.__dataclass_fields__:
        return  # per-cell timeouts are not in this harness yet
    out = tmp_path / "timeout"
    t0 = time.monotonic()
    res = run_harness(*run[3:], str(out), "--seeds", "0,1", "--timeout", "8",
                      "--set", "methods.burn.pause_s=120", env=here)
    took = time.monotonic() - t0
    assert res.returncode == 1, res
    records = [json.loads(p.read_text()) for p in record_files(out)]
    assert len(records) == 2 and all(r["status"] == "failed" for r in records)
    assert all("timed out after 8 s" in r["error"]["message"] for r in records)
    assert took < 110, took
    wait_for_workers(address, 2)  # both came back


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_worker_without_the_plugin_is_named_before_anything_runs(
        spin_site: Path, procs: Processes, tmp_path: Path, write_spec) -> None:
    spec = str(write_spec(SPEC))
    address = start_scheduler(procs, tmp_path)
    start_worker(procs, address, tmp_path / "bare", "bare", site=None)
    (worker,) = wait_for_workers(address, 1)
    out = tmp_path / "out"
    res = run_harness("run", spec, "--dask-address", address, "--out", str(out),
                      env={"PYTHONPATH": str(spin_site),
                           "HARNESS_CACHE": str(tmp_path / "cache")})
    assert res.returncode == 2, res
    assert "Traceback" not in res.stderr
    assert f"worker {worker} (bare)" in res.stderr
    assert "package harness-spin is not installed (the submitting side has harness-spin " \
           "0.2.0)" in res.stderr, res
    assert not (out / "cells").exists()


def test_an_unreachable_scheduler_is_a_clean_error(write_spec, tmp_path: Path) -> None:
    from harness.dask_executor import dask_client
    from harness.errors import HarnessError
    with pytest.raises(HarnessError, match="cannot reach the Dask scheduler at tcp://127.0.0"):
        with dask_client("tcp://127.0.0.1:9", 1, connect_timeout=2):
            pass


# -- fast: the pieces, without processes ------------------------------------------------
def test_a_spec_cannot_pick_the_cluster() -> None:
    from pydantic import ValidationError

    from harness.specmodel import Settings
    for key, value in (("executor", "dask"), ("dask_address", "tcp://evil:8786"),
                       ("address", "tcp://evil:8786")):
        with pytest.raises(ValidationError):
            Settings.model_validate({key: value})


def test_address_comes_from_the_flag_then_the_environment(monkeypatch) -> None:
    from harness.dask_executor import DaskExecutor
    monkeypatch.delenv("HARNESS_DASK_ADDRESS", raising=False)
    assert DaskExecutor(jobs=2).address is None
    monkeypatch.setenv("HARNESS_DASK_ADDRESS", "tcp://env:8786")
    assert DaskExecutor().address == "tcp://env:8786"
    assert DaskExecutor(address="tcp://flag:8786").address == "tcp://flag:8786"


def test_environment_report_names_missing_and_mismatched_packages_and_adapters() -> None:
    from importlib import metadata

    from harness.dask_worker import environment_report
    version = metadata.version("harness-bench")
    ok = environment_report({"packages": {"harness-bench": version}, "adapters": {
        "torch/mlp": ["harness-bench", "1", "harness_adapters.generic.models", "MLP"]}})
    assert ok["problems"] == [] and ok["pid"] == os.getpid()
    bad = environment_report({"packages": {"harness-bench": "0.0.0", "no-such-pkg": "1.2"}})
    assert bad["problems"] == [
        f"package harness-bench is {version}, the submitting side has 0.0.0",
        "package no-such-pkg is not installed (the submitting side has no-such-pkg 1.2)"]
    bad = environment_report({"packages": {}, "adapters": {
        "torch/mlp": ["harness-bench", "7", "harness_adapters.generic.models", "MLP"],
        "x/y": ["harness-x", "1", "harness_x_missing.plugin", "Y"]},
        "advisory": {"torch": "0.0.1"}})
    assert bad["problems"][0] == "adapter torch/mlp is version 1, the submitting side has 7"
    assert bad["problems"][1].startswith("adapter x/y (package harness-x) cannot be loaded: "
                                         "harness_x_missing.plugin.Y: ModuleNotFoundError")
    assert "torch is" in bad["warnings"][0] and "numbers may differ" in bad["warnings"][0]


def fake_plan(tmp_path: Path) -> Any:
    from harness.plan import CellPlan
    return CellPlan(cell_id="c-1", name="d/m/seed=0", seed=0, data_seed=0, model_seed=0,
                    spec_seed=0, dataset=None, model=None, method=None,  # type: ignore[arg-type]
                    metrics=[], config={"name": "d/m/seed=0", "group": "d/m", "spec_seed": 0,
                                        "seed": 0, "axes": {}},
                    versions={}, settings={}, spec_source=str(tmp_path / "spec.yaml"),
                    identity="id-1", data_fingerprint="fp-1")


def payload(**record: Any) -> dict[str, Any]:
    files = {"artifacts/a.npz": b"x" * 10, "examples.jsonl": b'{"i": 1}\n'}
    cell = {"name": "d/m/seed=0", "group": "d/m", "spec_seed": 0, "seed": 0, "axes": {}}
    return {"worker": {"host": "node7", "pid": 42, "address": "tcp://10.0.0.7:1"},
            "record": {"status": "ok", "identity": "id-1", "cell_id": "c-1", "cell": cell,
                       "settings": {},
                       "metrics": {"m": 0.5},
                       "data_fingerprint": "fp-1",
                       "provenance": {"argv": ["dask", "worker"]}, **record},
            "files": files, "files_bytes": sum(map(len, files.values()))}


def test_results_from_a_worker_are_written_into_the_results_folder(tmp_path: Path) -> None:
    from harness.dask_results import accept_result, write_cell
    from harness.results import ResultsDir
    plan, results = fake_plan(tmp_path), ResultsDir(tmp_path / "out")
    stale = results.cell_dir("c-1") / "artifacts" / "stale.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    record, files = accept_result(plan, payload(), max_bytes=1000)
    write_cell(results, plan, record, files)
    cell = results.cell_dir("c-1")
    assert (cell / "artifacts" / "a.npz").read_bytes() == b"x" * 10 and not stale.exists()
    assert (cell / "examples.jsonl").read_text() == '{"i": 1}\n'
    written = results.read_record("c-1")
    assert written is not None and written["metrics"] == {"m": 0.5}
    assert written["worker"]["host"] == "node7" and written["provenance"]["argv"] == sys.argv
    assert not list(cell.rglob("*.tmp"))


def test_files_over_the_cap_unsafe_paths_and_other_data_fail_the_cell(tmp_path: Path) -> None:
    from harness.dask_results import accept_result, max_result_bytes
    plan = fake_plan(tmp_path)
    record, files = accept_result(plan, payload(), max_bytes=12)
    assert record["status"] == "failed" and files == {} and record["metrics"] == {}
    msg = record["error"]["message"]
    assert "over the dask executor's cap of 0.0 MB" in msg and "HARNESS_DASK_MAX_RESULT_MB=1" in msg
    assert record["error"]["user"] is True
    bad = payload()
    bad["files"]["../../escape"] = b"!"
    record, files = accept_result(plan, bad, max_bytes=1000)
    assert record["status"] == "failed" and "unsafe paths" in record["error"]["message"]
    record, _ = accept_result(plan, payload(cell_id="other"), max_bytes=1000)
    assert record["status"] == "failed" and "sent an invalid record" in record["error"]["message"]
    record, _ = accept_result(plan, payload(data_fingerprint="fp-2"), max_bytes=1000)
    assert record["status"] == "failed" and "loaded different data" in record["error"]["message"]
    record, _ = accept_result(plan, {"worker": {"host": "h", "pid": 1, "address": "tcp://a:1"},
                                     "problems": ["package p is not installed"]}, 1000)
    assert record["status"] == "failed" and record["error"]["user"] is True
    assert "tcp://a:1" in record["error"]["message"]
    assert max_result_bytes() == 64 * 2**20


def test_the_result_cap_is_read_from_the_environment(monkeypatch) -> None:
    from harness.dask_results import max_result_bytes
    from harness.errors import HarnessError
    monkeypatch.setenv("HARNESS_DASK_MAX_RESULT_MB", "512")
    assert max_result_bytes() == 512 * 2**20
    monkeypatch.setenv("HARNESS_DASK_MAX_RESULT_MB", "lots")
    with pytest.raises(HarnessError, match="not a positive number"):
        max_result_bytes()


# -- the documented dask-jobqueue configuration ---------------------------------------------
def load_example() -> Any:
    path = ROOT / "examples" / "slurm_cluster.py"
    spec = importlib.util.spec_from_file_location("slurm_cluster_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documented_slurm_and_pbs_job_scripts() -> None:
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue.pbs import PBSJob
    from dask_jobqueue.slurm import SLURMJob
    example = load_example()
    script = SLURMJob(scheduler="tcp://10.1.2.3:8786", name="w", **example.SLURM).job_script()
    lines = script.splitlines()
    for directive in ("#SBATCH -p cpu", "#SBATCH -n 1", "#SBATCH --cpus-per-task=1",
                      "#SBATCH --mem=4G", "#SBATCH -t 02:00:00"):
        assert directive in lines, script
    assert "source ~/venvs/harness/bin/activate" in lines
    command = lines[-1]
    assert command.startswith("python -m distributed.cli.dask_worker tcp://10.1.2.3:8786 ")
    assert "--nthreads 1" in command and "--nanny" in command
    assert "--local-directory ${TMPDIR:-/tmp}" in command
    assert any("HARNESS_CACHE=" in line and "$SLURM_JOB_ID" in line for line in lines)
    pbs = PBSJob(scheduler="tcp://10.1.2.3:8786", name="w", **example.PBS).job_script()
    assert "#PBS -l select=1:ncpus=1:mem=4GB" in pbs and "$PBS_JOBID" in pbs
    assert "--nthreads 1" in pbs.splitlines()[-1]
