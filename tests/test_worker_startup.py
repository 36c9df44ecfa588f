"""A worker's start and end: workers started before the pool that takes them, and exits
that skip the interpreter's teardown but not the atexit handlers or a running thread.
(Timings: benchmarks/suite.py.)"""

from __future__ import annotations

import os
import pstats
import subprocess
import sys
import textwrap
from argparse import Namespace
from pathlib import Path

import pytest
from faultkit import cli, faults_site  # noqa: F401 (the fixture)

from harness import workers
from harness.cli import _peek_jobs


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_quick_exit_runs_atexit_handlers_flushes_and_waits_for_threads(tmp_path: Path) -> None:
    res = run_python("""
        import atexit, sys, threading, time
        from pathlib import Path
        from harness.quickexit import quick_exit
        atexit.register(lambda: Path("atexit.txt").write_text("ran"))
        def late():
            time.sleep(0.3)
            Path("thread.txt").write_text("done")
        threading.Thread(target=late).start()   # a normal exit would wait for it
        sys.stdout.write("unflushed output")
        quick_exit(3)
    """, tmp_path)
    assert res.returncode == 3
    assert res.stdout == "unflushed output"
    assert (tmp_path / "atexit.txt").read_text() == "ran"
    assert (tmp_path / "thread.txt").read_text() == "done"


@pytest.mark.parametrize("hook", ["sys.setprofile", "sys.settrace"])
def test_quick_exit_is_a_normal_exit_under_a_profiler_or_tracer(tmp_path: Path,
                                                                 hook: str) -> None:
    # cProfile, pyinstrument and trace write their report after the program returns
    res = run_python(f"""
        import sys
        from harness.quickexit import quick_exit
        {hook}(lambda *args: None)
        try:
            quick_exit(4)
        except SystemExit as exc:
            {hook}(None)
            print("normal exit", exc.code)
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "normal exit 4"


def test_a_profiled_cli_run_writes_its_profile(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[1] / "specs" / "digits-mlp.yaml"
    prof = tmp_path / "run.prof"
    res = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "harness",
                          "run", str(spec), "--seeds", "0", "--set", "methods.train.epochs=1",
                          "--out", str(tmp_path / "out")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONHASHSEED": "0"})
    assert res.returncode == 0, res.stderr
    stats = pstats.Stats(str(prof))
    assert any(func[2] == "cmd_run" for func in stats.stats)  # type: ignore[attr-defined]


def test_a_pool_takes_matching_spares_only(monkeypatch: pytest.MonkeyPatch) -> None:
    workers.prestart(2)
    try:
        spares = [w for _, w in workers._SPARES]
        assert len(spares) == 2 and all(w.proc.is_alive() for w in spares)
        monkeypatch.setenv("HARNESS_TEST_CHANGED", "1")  # not what the spares were started with
        assert workers._take_spare(workers.share_of_cores(2)) is None
        monkeypatch.delenv("HARNESS_TEST_CHANGED")
        assert workers._take_spare(workers.share_of_cores(2) + 1) is None  # another thread cap
        taken = workers._take_spare(workers.share_of_cores(2))
        assert taken in spares and len(workers._SPARES) == 1
    finally:
        workers.discard_spares()
    assert workers._SPARES == []
    assert not any(w.proc.is_alive() for w in spares if w is not taken)
    workers.WorkerPool._stop(taken)


@pytest.mark.usefixtures("faults_site")
def test_workers_run_their_atexit_handlers_when_the_run_ends(tmp_path: Path, capsys) -> None:
    """Each worker of a `--jobs 2` run (started before the spec was loaded) leaves after
    its atexit handlers: the cell's adapter registered one that writes a file."""
    marks = [tmp_path / "a.pid", tmp_path / "b.pid"]
    spec = tmp_path / "s.yaml"
    spec.write_text("name: ends\nseeds: [0]\nsettings: {jobs: 2}\nmethods:\n"
                    + "".join(f"  m{i}: {{use: fault/cell, mode: atexit, mark: {m}, "
                              f"seconds: 0.5}}\n" for i, m in enumerate(marks))
                    + "metrics: [fault/value]\n")
    assert cli("run", str(spec), "--out", str(tmp_path / "o")) == 0, capsys.readouterr().err
    pids = {m.read_text() for m in marks}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two workers, not this process
    assert workers._SPARES == []


@pytest.mark.parametrize(("text", "sets", "jobs"), [
    ("settings: {jobs: 3}\n", [], 3),
    ("settings: {jobs: 3}\n", ["settings.jobs=2"], 2),
    ("name: x\n", [], 1),
    ("settings: {jobs: true}\n", [], 1),
    ("settings: [unclosed\n", [], 1),
])
def test_the_worker_count_is_read_before_the_spec_is_loaded(
        tmp_path: Path, text: str, sets: list[str], jobs: int) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    args = Namespace(spec=str(spec), set=sets, seeds=None, jobs=None)
    assert _peek_jobs(args) == jobs
    assert _peek_jobs(Namespace(spec=str(spec), set=sets, seeds=None, jobs=5)) == 5


def test_the_worker_count_follows_extends(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("settings: {jobs: 4}\n")
    (tmp_path / "spec.yaml").write_text("extends: base.yaml\nname: child\n")
    args = Namespace(spec=str(tmp_path / "spec.yaml"), set=[], seeds=None, jobs=None)
    assert _peek_jobs(args) == 4
