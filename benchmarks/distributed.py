"""The dask executor on a real scheduler: the speed-up of 2 single-thread workers over 1
on 8 CPU-bound cells (about 10 s each on an idle core), and the per-cell overhead of the
dask path against the pool executor on 40 tiny cells; one run, one scheduler.

    python benchmarks/distributed.py [--steps 4000] [--tiny 40]

It starts `python -m dask scheduler` and `python -m dask worker --nthreads 1` processes
on loopback (each worker in a folder of its own, as on separate machines), runs the
8 cells with one worker attached, attaches a second and runs them again into another
results folder (the numbers must be identical), then runs 40 tiny cells through the
pool executor (`--jobs 2`) and through the two workers. It prints wall and CPU time
(this process and its children: scheduler and workers) and the machine's load average:
the 1.8x target needs 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# this file is named like the `distributed` package: keep its folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from harness.dask_executor import DaskExecutor  # noqa: E402
from harness.executors import InProcessExecutor, PoolExecutor  # noqa: E402
from harness.plan import make_plan  # noqa: E402
from harness.registry import get_registry  # noqa: E402
from harness.runner import run_plan  # noqa: E402
from harness.spec import load_spec  # noqa: E402

CPU_SPEC = """\
name: cpu-bound
seeds: [0, 1, 2, 3, 4, 5, 6, 7]
datasets:
  digits: {{use: sklearn/digits}}
models:
  mlp: {{use: torch/mlp, hidden: [256, 256]}}
methods:
  train: {{use: torch/train-classifier, steps: {steps}, batch_size: 128}}
metrics: [accuracy]
"""
TINY_SPEC = """\
name: tiny
seeds: {seeds}
datasets:
  iris: {{use: sklearn/iris}}
models:
  mlp: {{use: torch/mlp, hidden: [8]}}
methods:
  train: {{use: torch/train-classifier, steps: 5}}
metrics: [accuracy]
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1",
           "HARNESS_CACHE": str(cwd / "cache")}
    with open(log, "wb") as fh:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for(address: str, n: int) -> None:
    from distributed import Client
    with Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=180)


def timed_run(spec_text: str, tmp: Path, name: str, executor: Any) -> dict[str, Any]:
    path = tmp / f"{name}.yaml"
    path.write_text(spec_text)
    spec = load_spec(path, get_registry())
    plan = make_plan(spec, tmp / name, tmp / "cache", force=True)
    cpu0, t0 = time.process_time(), time.perf_counter()
    report = run_plan(plan, executor=executor)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    failed = [r["error"]["message"] for r in report.failed]
    if failed:
        raise SystemExit(f"{name}: {len(failed)} cell(s) failed: {failed[0]}")
    metrics = sorted((c["name"], c["metrics"]) for c in report.summary["cells"])
    return {"wall_s": wall, "submit_cpu_s": cpu, "cells": len(plan.cells), "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4000, help="optimizer steps per CPU cell")
    parser.add_argument("--tiny", type=int, default=40, help="tiny cells for the overhead")
    args = parser.parse_args()
    load_before = os.getloadavg()
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "load_before": load_before}
    procs: list[subprocess.Popen[bytes]] = []
    procs_close: list[Any] = []  # executors that keep workers (closed at the end)
    with tempfile.TemporaryDirectory(prefix="harness-dask-bench-") as name:
        tmp = Path(name)
        sched = tmp / "scheduler.json"
        py = [sys.executable, "-m", "dask"]
        procs.append(start([*py, "scheduler", "--host", "127.0.0.1", "--port", "0",
                            "--no-dashboard", "--scheduler-file", str(sched)],
                           tmp / "scheduler", tmp / "scheduler.log"))
        try:
            while not sched.exists():
                time.sleep(0.2)
            time.sleep(0.5)
            address = json.loads(sched.read_text())["address"]

            def worker(i: int) -> None:
                folder = tmp / f"worker-{i}"
                procs.append(start([*py, "worker", address, "--nthreads", "1", "--name",
                                    f"w{i}", "--local-directory", str(folder),
                                    "--no-dashboard"], folder, tmp / f"worker-{i}.log"))
                wait_for(address, i)

            dask = DaskExecutor(address=address)
            cpu_spec = CPU_SPEC.format(steps=args.steps)
            worker(1)
            timed_run(TINY_SPEC.format(seeds=[0]), tmp, "warm1", dask)  # imports on w1
            one = timed_run(cpu_spec, tmp, "one-worker", dask)
            worker(2)
            timed_run(TINY_SPEC.format(seeds=[0, 1]), tmp, "warm2", dask)  # imports on w2
            two = timed_run(cpu_spec, tmp, "two-workers", dask)
            assert one["metrics"] == two["metrics"], "1 and 2 workers gave different numbers"
            few = max(2, args.tiny // 5)
            timed_run(TINY_SPEC.format(seeds=[0]), tmp, "warm0", InProcessExecutor())
            # the pool keeps its workers between runs: start them once, timed apart
            pool = PoolExecutor(jobs=2)
            procs_close.append(pool.close)
            pool_start = timed_run(TINY_SPEC.format(seeds=[0, 1]), tmp, "warm-pool",
                                   pool)["wall_s"]
            tiny: dict[str, dict[int, float]] = {}
            numbers: dict[str, Any] = {}
            for label, executor in (("inprocess", InProcessExecutor()),
                                    ("pool", pool), ("dask", dask)):
                runs = {n: timed_run(TINY_SPEC.format(seeds=list(range(n))), tmp,
                                     f"tiny-{label}-{n}", executor) for n in (few, args.tiny)}
                tiny[label] = {n: r["wall_s"] for n, r in runs.items()}
                numbers[label] = runs[args.tiny]["metrics"]
            assert numbers["pool"] == numbers["dask"] == numbers["inprocess"], \
                "the executors gave different numbers"
        finally:
            for close in procs_close:
                close()
            for proc in reversed(procs):
                stop(proc)
    out.update({
        "cpu_cells": {"n": 8, "steps": args.steps, "one_worker_wall_s": one["wall_s"],
                      "two_workers_wall_s": two["wall_s"],
                      "speedup": one["wall_s"] / two["wall_s"]},
        "tiny_cells": {
            label: {"cells": [few, args.tiny], "wall_s": [t[few], t[args.tiny]],
                    "per_cell_s": (t[args.tiny] - t[few]) / (args.tiny - few),
                    "fixed_s": t[few] - few * (t[args.tiny] - t[few]) / (args.tiny - few)}
            for label, t in tiny.items()},
        "pool_start_s": pool_start,
        "cpu_s": {"this_process": time.process_time(), "children": children_cpu()},
        "load_after": os.getloadavg(),
    })
    c, t = out["cpu_cells"], out["tiny_cells"]
    print(f"8 CPU-bound cells: 1 worker {c['one_worker_wall_s']:.1f} s, 2 workers "
          f"{c['two_workers_wall_s']:.1f} s: speed-up {c['speedup']:.2f}x (target >= 1.8x "
          "with 2 idle cores)")
    print(f"tiny cells, wall per extra cell ({few} vs {args.tiny} cells) and fixed cost:")
    for label, row in t.items():
        print(f"  {label:9s} {row['per_cell_s'] * 1000:6.0f} ms/cell, fixed "
              f"{row['fixed_s']:5.1f} s ({args.tiny} cells: {row['wall_s'][1]:.1f} s)")
    print(f"  dask - pool: {(t['dask']['per_cell_s'] - t['pool']['per_cell_s']) * 1000:+.0f} "
          "ms/cell")
    print(f"  the pool's 2 processes started once, before those runs: {pool_start:.1f} s "
          "(a 2-cell run on fresh workers)")
    print(f"CPU: this process {out['cpu_s']['this_process']:.1f} s, scheduler+workers+pool "
          f"{out['cpu_s']['children']:.1f} s; load average before "
          f"{', '.join(f'{x:.2f}' for x in load_before)}, after "
          f"{', '.join(f'{x:.2f}' for x in out['load_after'])} on {out['cpu_count']} cores")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
