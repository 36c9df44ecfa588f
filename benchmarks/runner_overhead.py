"""How much the runner adds per cell: a spec of tiny cells run through `run_spec`
(in-process executor: identity hashing, data fingerprint, records, index, summary)
against the same adapter calls made directly, measured in the same run.

    python benchmarks/runner_overhead.py [--cells 20] [--repeat 5] [--results DIR ...]

The direct calls and the harness run alternate ``--repeat`` times, each harness run into a
fresh folder; the figures are the medians (a shared machine's speed drifts by tens of
percent within a minute: one pair alone can be off by a factor of three).

With ``--results``, the overhead measured here is also given as a share of the real cells
recorded in each results folder (a spec's ``harness run --out DIR``, controls included):
per folder the number of cells, their median and shortest wall time (the records'
``timings.total_s``), and the overhead per cell over each (the target is under 2%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from harness.adapter import CellResult
from harness.cells import expand
from harness.context import RunContext
from harness.executors import InProcessExecutor
from harness.provenance import apply_determinism
from harness.registry import get_registry
from harness.runner import run_spec
from harness.spec import load_spec

SPEC = """\
name: overhead
seeds: {seeds}
datasets:
  iris: {{use: sklearn/iris}}
models:
  mlp: {{use: torch/mlp, hidden: [8]}}
methods:
  train: {{use: torch/train-classifier, steps: 20}}
metrics: [accuracy]
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5,
                        help="alternating measurements of each; their medians are printed")
    parser.add_argument("--results", type=Path, nargs="*", default=[],
                        help="results folders whose recorded cells the overhead is set against")
    args = parser.parse_args()
    registry = get_registry()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(SPEC.format(seeds=list(range(args.cells))))
        spec = load_spec(path, registry)
        cells = expand(spec)

        apply_determinism(threads=1, deterministic=True)  # the runner's settings, for both

        def direct_cell(cell):  # the bare adapter calls, as a script would make them
            data = cell.dataset_component.build().load(RunContext(seed=cell.data_seed))
            ctx = RunContext(seed=cell.seed)
            model = cell.model_component.build().build(ctx, data)
            result = cell.method_component.build().run(ctx, data, model)
            for metric in cell.point.metrics:
                metric.build().compute(ctx, CellResult(data, model, result))

        direct_cell(cells[0])  # warm-up: lazy imports and first-call costs
        directs, runs, reuses = [], [], []
        for i in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            for cell in cells:
                direct_cell(cell)
            directs.append(time.perf_counter() - t0)

            out = Path(tmp) / f"out{i}"
            t0 = time.perf_counter()
            run_spec(spec, out, executor=InProcessExecutor(), cache_dir=Path(tmp) / "cache")
            runs.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            report = run_spec(spec, out, executor=InProcessExecutor(),
                              cache_dir=Path(tmp) / "cache")
            reuses.append(time.perf_counter() - t0)
            assert len(report.skipped) == len(cells)
        direct, harness_s = statistics.median(directs), statistics.median(runs)
        reuse_s = statistics.median(reuses)
        overhead = statistics.median(r - d for r, d in zip(runs, directs, strict=True))
        fastest = min(runs) - min(directs)  # the least disturbed run of each

    n = len(cells)
    print(f"cells: {n}, medians of {len(runs)} alternating runs")
    print(f"direct adapter calls: {direct:.3f} s ({direct / n * 1e3:.1f} ms/cell)")
    print(f"harness run:          {harness_s:.3f} s ({harness_s / n * 1e3:.1f} ms/cell)")
    print(f"overhead per cell:    {overhead / n * 1e3:.1f} ms "
          f"(ratio {harness_s / direct:.2f}x; per pair "
          + ", ".join(f"{(r - d) / n * 1e3:.1f}" for r, d in zip(runs, directs, strict=True))
          + " ms)")
    print(f"fastest of each:      {min(directs):.3f} s direct, {min(runs):.3f} s harness: "
          f"{fastest / n * 1e3:.1f} ms/cell")
    print(f"re-run, all reused:   {reuse_s:.3f} s ({reuse_s / n * 1e3:.1f} ms/cell)")
    if args.results:
        print_shares(args.results, overhead / n)


def recorded_cell_seconds(out: Path) -> list[float]:
    """Wall seconds of every ok cell recorded under ``out`` (its controls' folders too)."""
    seconds = []
    for path in sorted(out.glob("**/cells/*/record.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        total = (record.get("timings") or {}).get("total_s")
        if record.get("status") == "ok" and isinstance(total, (int, float)) and total > 0:
            seconds.append(float(total))
    return seconds


def print_shares(folders: list[Path], overhead_s: float) -> None:
    print(f"\noverhead {overhead_s * 1e3:.1f} ms/cell as a share of recorded cells (target < 2%):")
    print(f"{'results':32} {'cells':>5} {'median s':>9} {'min s':>8} {'share@median':>13} "
          f"{'share@min':>10}")
    for folder in folders:
        cells = recorded_cell_seconds(folder)
        if not cells:
            print(f"{str(folder.name):32} no ok cell records")
            continue
        median, shortest = statistics.median(cells), min(cells)
        print(f"{folder.name:32} {len(cells):>5} {median:9.2f} {shortest:8.2f} "
              f"{100 * overhead_s / median:12.3f}% {100 * overhead_s / shortest:9.3f}%")


if __name__ == "__main__":
    main()
