"""The default specs one after another: wall and CPU time per spec, where the time goes,
the harness's share of it, and a fully cached re-run of each, in one run.

    python benchmarks/suite.py [--out DIR] [--specs hnn,lca] [--jobs N] [--fresh]

Each spec runs through the real CLI (`harness run specs/<name>.yaml --out DIR/<name>`) in a
subprocess; CPU time is the children's user + system time of that subprocess and its
workers. Per spec the table splits the cells' time into data loading, model building, the
method's run and the metrics (from the records' `timings`); `span` is the first cell's
start to the last cell's end (the records' timestamps), `busy%` how full the workers were
during it (100: no worker ever idle; below, the cells do not divide evenly among the
jobs), and `outside` the command's wall time before the first cell and after the last
(start-up, plan, data fingerprints, summary, claims): the harness's own share, `harness%`
of the whole. A second, fully cached run of each spec
measures the re-run target (under 2 s). Figures depend on the machine's load: the load
average is printed with them. `--fresh` deletes each spec's results folder first, and
the language models' log-likelihood memo (`<cache>/lm-scores`), so that only the reuse
within this run counts; the converted model copies stay (a one-time conversion). Without
it, cells already recorded in DIR are reused (and the first run is a cached one).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The ten papers' main specs (issue 20: long variants such as -scale and -two-body are not
# part of the default suite), plus the two-paper composition example.
DEFAULT_SPECS = ["rxrx1", "bigbench", "xlingual-icl", "loss-prioritization", "supsup",
                 "qss-tabular", "d3g-pendulum", "pplm", "fop", "lca", "hnn"]
BUDGET_S = 15 * 60
PHASES = ("load_s", "build_s", "run_s", "metrics_s")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(spec: str, out: Path, jobs: int | None) -> tuple[int, float, float, str]:
    """(exit code, wall s, CPU s, last stderr line) of one `harness run`."""
    cmd = [sys.executable, "-m", "harness", "run", str(ROOT / "specs" / f"{spec}.yaml"),
           "--out", str(out)]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    tail = (proc.stderr.strip().splitlines() or [""])[-1]
    return proc.returncode, wall, cpu, tail


def spec_jobs(spec: str) -> int:
    """The spec's own ``settings.jobs`` (1 when it sets none)."""
    try:
        doc = yaml.safe_load((ROOT / "specs" / f"{spec}.yaml").read_text())
        return int((doc.get("settings") or {}).get("jobs", 1))
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):
        return 1


def cell_times(out: Path) -> dict[str, float]:
    """Summed phase timings of the cells recorded in ``out`` (this spec only), and their
    span: first cell's start to last cell's end, from the records' timestamps."""
    totals = dict.fromkeys((*PHASES, "total_s", "cpu_s", "span_s"), 0.0)
    totals["cells"] = 0
    starts, ends = [], []
    for record_path in (out / "cells").glob("*/record.json"):
        try:
            record = json.loads(record_path.read_text())
            starts.append(datetime.fromisoformat(record["started"]).timestamp())
            ends.append(datetime.fromisoformat(record["finished"]).timestamp())
        except (OSError, ValueError, KeyError, TypeError):
            continue
        timings = record.get("timings", {})
        totals["cells"] += 1
        for key in (*PHASES, "total_s", "cpu_s"):
            totals[key] += float(timings.get(key, 0.0))
    if starts:
        totals["span_s"] = max(ends) - min(starts)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "suite")
    parser.add_argument("--specs", default=",".join(DEFAULT_SPECS))
    parser.add_argument("--jobs", type=int, default=None, help="default: each spec's own")
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    specs = [s for s in args.specs.split(",") if s]
    if args.fresh:
        sys.path.insert(0, str(ROOT))
        from harness.cli import default_cache
        shutil.rmtree(default_cache() / "lm-scores", ignore_errors=True)
    print(f"{len(specs)} specs, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start")
    header = (f"{'spec':22} {'exit':>4} {'wall s':>8} {'cpu s':>8} {'cells':>5} "
              f"{'load%':>6} {'run%':>5} {'metr%':>6} {'span s':>7} {'busy%':>5} "
              f"{'outside s':>9} {'harness%':>8} {'cached s':>8} {'cpu':>5}")
    print(header)
    total_wall = 0.0
    for spec in specs:
        out = args.out / spec
        if args.fresh and out.exists():
            shutil.rmtree(out)
        code, wall, cpu, tail = run_once(spec, out, args.jobs)
        cells = cell_times(out)
        code2, cached, cached_cpu, _ = run_once(spec, out, args.jobs)
        total_wall += wall
        inside = cells["total_s"]
        jobs = max(1, min(args.jobs or spec_jobs(spec), int(cells["cells"]) or 1))
        share = {k: 100 * cells[k] / inside if inside else 0.0 for k in PHASES}
        span = cells["span_s"]
        # busy%: how full the workers were during the span (100 = no worker ever idle);
        # outside: the command's wall time before the first cell and after the last one
        # (start-up, plan, data fingerprints, summary, claims), the harness's own share.
        busy = 100 * inside / (span * jobs) if span else 0.0
        outside = max(0.0, wall - span)
        print(f"{spec:22} {code:>4} {wall:8.1f} {cpu:8.1f} {int(cells['cells']):>5} "
              f"{share['load_s']:6.1f} {share['run_s']:5.1f} {share['metrics_s']:6.1f} "
              f"{span:7.1f} {busy:5.0f} {outside:9.1f} "
              f"{100 * outside / wall if wall else 0:8.1f} {cached:8.2f} {cached_cpu:5.2f}"
              + ("" if code2 == code else f"  (cached run exit {code2})"))
        if code not in (0, 1):
            print(f"  {tail}")
    verdict = "within" if total_wall <= BUDGET_S else "OVER"
    print(f"total wall {total_wall:.0f} s = {total_wall / 60:.1f} min: {verdict} the "
          f"{BUDGET_S // 60}-minute budget (load {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
