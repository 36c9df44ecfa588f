"""Helpers of benchmarks/vs_official.py: one side of a row is one measured process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}


@dataclass
class Side:
    """One process: ``argv`` run in ``cwd``; ``headline`` reads its number afterwards from
    the work folder (and the captured stdout)."""

    argv: list[str]
    headline: Callable[[Path, str], dict[str, float]]
    work: Path
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Case:
    label: str
    official: Side
    harness: Side


@dataclass
class Row:
    name: str
    what: str          # the checkout (or program) the row needs
    steps: int         # default steps (the row says what a step is)
    cases: Callable[[Path, Path, int, int], list[Case]]  # (checkout, work, steps, seed)
    note: str = ""


def measure(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 7200
            ) -> dict[str, Any]:
    """Run one process; its wall time, CPU time and peak RSS (it and its children)."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    full_env = {**os.environ, **THREAD_ENV, **env}
    with open(out, "w") as fo, open(err, "w") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=fo, stderr=fe)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rc": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024, "stdout": out.read_text(),
            "stderr": err.read_text()}


def run_side(side: Side) -> dict[str, Any]:
    res = measure(side.argv, side.work, side.env)
    stdout = res.pop("stdout")
    stderr = res.pop("stderr")
    if res["rc"] != 0:
        res["error"] = (stderr.strip() or stdout.strip())[-600:]
        return res
    try:
        res["headline"] = side.headline(side.work, stdout)
    except Exception as exc:  # a headline the side did not print: show what it printed
        res["error"] = f"no headline ({type(exc).__name__}: {exc}): {stdout[-300:]}"
    return res


# --- the harness side: `harness run` on a spec written for the case -------------------

def harness_side(work: Path, spec: dict[str, Any], metrics: dict[str, str],
                 env: dict[str, str] | None = None) -> Side:
    """``harness run`` of ``spec`` (written to ``work``); the headline is each
    ``{label: metric}`` of the one cell's record."""
    work.mkdir(parents=True, exist_ok=True)
    spec = {"settings": {"threads": 1, "device": "cpu", "jobs": 1}, **spec}
    (work / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    def headline(folder: Path, _stdout: str) -> dict[str, float]:
        cells = json.loads((folder / "out" / "summary.json").read_text())["cells"]
        if len(cells) != 1 or cells[0]["status"] != "ok":
            raise RuntimeError(f"cells: {[(c['name'], c['status'], c['error']) for c in cells]}")
        return {label: float(cells[0]["metrics"][name]) for label, name in metrics.items()}

    argv = [sys.executable, "-m", "harness", "run", str(work / "spec.yaml"), "--out",
            str(work / "out")]
    return Side(argv, headline, work, dict(env or {}))


def warm_harness(cache: Path) -> None:
    """Point every harness side at ``cache`` and write its plugin manifest there (untimed):
    every ``harness`` command after the first imports only the plugins it uses."""
    os.environ["HARNESS_CACHE"] = str(cache)
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "harness", "list"], capture_output=True,
                   env={**os.environ, **THREAD_ENV}, check=False)


def script_side(work: Path, name: str, source: str, args: list[str],
                headline: Callable[[Path, str], dict[str, float]]) -> Side:
    """A shim script (``source``) written to ``work`` and run with ``args``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / name).write_text(textwrap.dedent(source))
    return Side([sys.executable, str(work / name), *args], headline, work)


def json_headline(folder: Path, _stdout: str) -> dict[str, float]:
    """The shim wrote ``headline.json``."""
    return {k: float(v) for k, v in json.loads((folder / "headline.json").read_text()).items()}
