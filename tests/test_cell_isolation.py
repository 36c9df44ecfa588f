"""A cell never ends the run: BaseExceptions in run(), timeouts, dead workers, SIGINT,
SIGKILL of a `--jobs 2` parent (no orphans), and one writer per results folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, default_sigint, load_summary
from faultkit import cli, faults_site  # noqa: F401 (the fixture)

from harness.plan import make_plan
from harness.registry import get_registry
from harness.spec import load_spec

pytestmark = pytest.mark.usefixtures("faults_site")


def spec_text(name: str, methods: dict[str, str], seeds: str = "[0]", extra: str = "") -> str:
    body = "".join(f"  {k}: {{use: fault/cell, {v}}}\n" for k, v in methods.items())
    return f"name: {name}\nseeds: {seeds}\n{extra}methods:\n{body}metrics: [fault/value]\n"


def test_base_exceptions_in_a_cell_are_failed_cells(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text("cells", {"ok1": "value: 1", "exit": "mode: sys_exit",
                                        "kb": "mode: keyboard", "base": "mode: base",
                                        "ok2": "value: 2"}))
    code = cli("run", str(spec), "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "5 ran, 0 reused, 3 failed" in err
    cells = {c["name"].split("/")[0]: c for c in load_summary(tmp_path / "o")["cells"]}
    assert [cells[k]["status"] for k in ("ok1", "exit", "kb", "base", "ok2")] == [
        "ok", "failed", "failed", "failed", "ok"]
    assert cells["exit"]["error"].startswith("SystemExit: 0")
    assert cells["kb"]["error"].startswith("KeyboardInterrupt")
    assert cells["base"]["error"].startswith("FaultError: not an Exception")


def test_timeout_setting_is_validated_and_not_part_of_identity(tmp_path: Path,
                                                               capsys) -> None:
    spec = tmp_path / "s.yaml"
    for bad in ("-1", "0", ".inf", ".nan", "soon"):
        spec.write_text(spec_text("t", {"a": "value: 1"},
                                  extra=f"settings: {{timeout_s: {bad}}}\n"))
        assert cli("validate", str(spec)) == 2
        assert "timeout_s" in capsys.readouterr().err
    assert cli("run", str(spec), "--out", str(tmp_path / "o"), "--timeout", "-3") == 2
    assert "positive number of seconds" in capsys.readouterr().err
    plain = tmp_path / "plain.yaml"
    plain.write_text(spec_text("t", {"a": "value: 1"}))
    spec.write_text(spec_text("t", {"a": "value: 1"}, extra="settings: {timeout_s: 2.5}\n"))
    reg = get_registry()
    with_t = make_plan(load_spec(spec, reg), tmp_path / "o", tmp_path).cells[0]
    without = make_plan(load_spec(plain, reg), tmp_path / "o", tmp_path).cells[0]
    assert with_t.timeout_s == 2.5 and without.timeout_s is None
    assert with_t.identity == without.identity  # a limit does not change results


@pytest.mark.slow
def test_hung_and_dying_cells_are_stopped_and_the_sweep_goes_on(tmp_path: Path,
                                                                 capsys) -> None:
    """--timeout with --jobs 1: cells run in one worker process, replaced when a cell
    hangs past the limit or kills its process."""
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text("hung", {"hang": "mode: hang", "osexit": "mode: os_exit",
                                       "ok": "value: 3"}))
    t0 = time.monotonic()
    code = cli("run", str(spec), "--out", str(tmp_path / "o"), "--timeout", "1.5")
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 1, err
    cells = {c["name"].split("/")[0]: c for c in load_summary(tmp_path / "o")["cells"]}
    assert cells["hang"]["status"] == "failed"
    assert cells["hang"]["error"] == "timed out after 1.5 s"
    assert "exited with status 0" in cells["osexit"]["error"]
    assert cells["ok"]["status"] == "ok" and cells["ok"]["metrics"] == {"value": 3.0}
    assert took < 120
    # the timed-out cell is re-run next time; the ok one is reused
    assert cli("run", str(spec), "--out", str(tmp_path / "o"),
               "--set", "methods.hang.mode=ok", "--set", "methods.osexit.mode=ok") == 0
    assert "2 ran, 1 reused, 0 failed" in capsys.readouterr().err


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc."""
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_a_jobs2_parent_leaves_no_orphans(tmp_path: Path,
                                                     capsys) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text("kill", {f"m{i}": f"value: {i}, seconds: 1.0" for i in range(6)}))
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(spec), "--out",
                             str(out), "--jobs", "2"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    kids: set[int] = set()
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not list(out.glob("cells/*/record.json")):
            time.sleep(0.05)
        kids = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, not its process group
        proc.wait(10)
        killed = time.monotonic()
        while any(_alive(k) for k in kids) and time.monotonic() - killed < 10:
            time.sleep(0.02)
        orphan_s = time.monotonic() - killed
        survivors = [k for k in kids if _alive(k)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for k in kids:
            if _alive(k):
                os.kill(k, signal.SIGKILL)
    print(f"orphans gone {orphan_s:.2f} s after the parent's SIGKILL ({len(kids)} children)")
    assert len(kids) >= 2, "the kill should land while the workers run"
    assert not survivors, f"orphans alive {orphan_s:.1f} s after the parent's SIGKILL"
    assert orphan_s < 3, orphan_s
    before = sorted(p.name for p in out.glob("cells/*/record.json"))
    time.sleep(1.5)
    assert sorted(p.name for p in out.glob("cells/*/record.json")) == before  # nobody writes
    done = len(list(out.glob("cells/*/record.json")))
    assert 1 <= done < 6
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    assert cli("run", str(spec), "--out", str(out)) == 0
    assert f"{6 - done} ran, {done} reused, 0 failed" in capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in out.glob("cells/*/record.json")]
    assert len(records) == 6 and len({r["cell"]["name"] for r in records}) == 6
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_sigint_stops_the_run_promptly_and_it_resumes(tmp_path: Path,
                                                      capsys) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text("int", {f"m{i}": f"value: {i}, seconds: 0.7" for i in range(5)}))
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(spec), "--out",
                             str(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not list(out.glob("cells/*/record.json")):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        _, stderr = proc.communicate(timeout=20)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr
    print(f"stopped {stop_s:.2f} s after SIGINT")
    assert "interrupted" in stderr and stop_s < 15  # the interpreter's exit, on a loaded machine
    records = [json.loads(p.read_text()) for p in out.glob("cells/*/record.json")]
    assert records and all(r["status"] == "ok" for r in records)  # no KeyboardInterrupt cell
    assert cli("run", str(spec), "--out", str(out)) == 0
    assert f"{5 - len(records)} ran, {len(records)} reused" in capsys.readouterr().err


def test_two_runs_on_one_folder_the_second_exits_2_or_waits(tmp_path: Path,
                                                            capsys) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text("lock", {"a": "value: 1"}))
    out = tmp_path / "o"
    hold = ("import sys, time\nfrom harness.lock import locked\n"
            "with locked(sys.argv[1]):\n    print('held', flush=True)\n"
            "    time.sleep(float(sys.argv[2]))\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out), "30"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert cli("run", str(spec), "--out", str(out)) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err and "--wait" in err and "Traceback" not in err
        assert not (out / "cells").exists()  # nothing ran
    finally:
        holder.kill()
        holder.wait()
    holder = subprocess.Popen([sys.executable, "-c", hold, str(out), "1"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        assert cli("run", str(spec), "--out", str(out), "--wait") == 0
        assert time.monotonic() - t0 > 0.3  # it queued behind the holder
    finally:
        holder.kill()
        holder.wait()
    # a SIGKILLed holder leaves no stale lock; read-only commands never need it
    assert cli("run", str(spec), "--out", str(out)) == 0
    assert "0 ran, 1 reused" in capsys.readouterr().err
    assert cli("show", str(out)) == 0


def test_an_executor_that_raises_keeps_the_records_and_the_summary(tmp_path: Path) -> None:
    from harness.errors import HarnessError
    from harness.runner import execute_cell, run_plan

    class Broken:
        name = "broken"

        def run(self, plans, out_dir, on_done, on_step) -> None:
            on_done(plans[0], execute_cell(plans[0], out_dir))
            raise RuntimeError("lost the cluster")

    spec = tmp_path / "s.yaml"
    spec.write_text(spec_text("ex", {"a": "value: 1", "b": "value: 2"}))
    plan = make_plan(load_spec(spec, get_registry()), tmp_path / "o", tmp_path)
    with pytest.raises(HarnessError, match="executor 'broken' failed: RuntimeError: lost"):
        run_plan(plan, executor=Broken())
    statuses = [c["status"] for c in load_summary(tmp_path / "o")["cells"]]
    assert statuses == ["ok", "missing"]


def test_workers_cap_native_thread_pools_at_their_share_of_the_cores() -> None:
    """jobs workers on N cores: BLAS gets N // jobs threads each (never 0), unless the user
    set it; torch's own threads stay the cell's `threads` setting."""
    import os
    import subprocess
    import sys

    from harness.workers import share_of_cores
    cores = os.cpu_count() or 1
    assert share_of_cores(1) == cores and share_of_cores(cores * 4) == 1
    assert share_of_cores(2) == max(1, cores // 2)
    probe = ("from harness.workers import cap_native_threads; cap_native_threads(1); "
             "import numpy, threadpoolctl; "
             "print(sorted({p['num_threads'] for p in threadpoolctl.threadpool_info()}))")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert out.strip() == "[1]"
    env["OPENBLAS_NUM_THREADS"] = "2"  # the user's own setting wins
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env=env).stdout
    assert out.strip() == ("[2]" if cores >= 2 else out.strip())
