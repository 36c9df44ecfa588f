"""Side by side with the official implementations: the official code and the harness's
adapter on the same work (same data sizes, model size, number of steps, one torch thread),
each in its own subprocess, in one run (issue 20).

    python benchmarks/vs_official.py --official hnn=PATH --official d3g=PATH \\
        --official sb=PATH --official supsup=PATH --official bigbench=LM_EVAL_PYTHON \\
        [--rows hnn,d3g] [--steps hnn=2000] [--seed 0] [--out results.json]

``PATH`` is a local checkout of the paper's official repository (greydanus/hamiltonian-nn,
uber-research/D3G, angelajiang/SelectiveBackprop, RAIVNLab/supsup); for ``bigbench`` it is
a Python with lm-evaluation-harness installed. Nothing is downloaded and nothing from those
repositories is part of the project: the official side imports the checkout's own modules
by path at run time, through the small shims in this script and its ``_official_*.py``
siblings (written to a temporary folder). A row whose checkout is not given prints
``skipped: give --official NAME=PATH`` and the script still exits 0.

Per row and case, each side is one process: wall time, CPU time (user + system of the
process and its children, from ``wait4``), peak resident memory, and the headline number.
The harness side is the real command, ``harness run`` on a spec written for the case (the
adapter's spec with the sizes of the official run), with a fresh cache folder, so it pays
the runner's whole cost (spec loading, data fingerprint, records, summary). Both sides run
with ``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``. The ratio is harness wall /
official wall, measured in the same run; on a loaded machine CPU time is the steadier one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

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
    """``harness run`` of ``spec`` (written to ``work``) with a fresh cache; the headline is
    each ``{label: metric}`` of the one cell's record."""
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
    return Side(argv, headline, work, {"HARNESS_CACHE": str(work / "cache"), **(env or {})})


def script_side(work: Path, name: str, source: str, args: list[str],
                headline: Callable[[Path, str], dict[str, float]]) -> Side:
    """A shim script (``source``) written to ``work`` and run with ``args``."""
    work.mkdir(parents=True, exist_ok=True)
    (work / name).write_text(textwrap.dedent(source))
    return Side([sys.executable, str(work / name), *args], headline, work)


def json_headline(folder: Path, _stdout: str) -> dict[str, float]:
    """The shim wrote ``headline.json``."""
    return {k: float(v) for k, v in json.loads((folder / "headline.json").read_text()).items()}


# --- HNN: greydanus/hamiltonian-nn, experiment-spring and experiment-pend train.py ------

HNN_SHIM = """
    # Runs the official experiment-*/train.py `train(args)` from the checkout, one thread.
    import contextlib, io, json, os, sys
    import torch
    torch.set_num_threads(1)
    path, folder, steps, seed = sys.argv[1:5]
    baseline = sys.argv[5] == "baseline"
    sys.path[:0] = [os.path.join(path, folder), path]   # its data.py first, then hnn.py etc.
    sys.argv = ["train.py", "--total_steps", steps, "--seed", seed, "--save_dir", "."]
    sys.argv += ["--baseline"] if baseline else []
    import train
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        train.train(train.get_args())
    print(printed.getvalue())
"""

HNN_SYSTEMS = {"spring": ("experiment-spring", "hnn/spring"),
               "pendulum": ("experiment-pend", "hnn/pendulum")}


def hnn_official_headline(_folder: Path, stdout: str) -> dict[str, float]:
    found = re.search(r"Final test loss ([0-9.eE+-]+)", stdout)
    if not found:
        raise RuntimeError("no 'Final test loss' line")
    return {"test_loss": float(found.group(1))}


def hnn_cases(checkout: Path, work: Path, steps: int, seed: int) -> list[Case]:
    cases = []
    for system, (folder, dataset) in HNN_SYSTEMS.items():
        for model, adapter in (("baseline", "hnn/mlp"), ("hnn", "hnn/hnn")):
            label = f"{system} {model}"
            case_dir = work / label.replace(" ", "-")
            official = script_side(case_dir / "official", "hnn_shim.py", HNN_SHIM,
                                   [str(checkout), folder, str(steps), str(seed), model],
                                   hnn_official_headline)
            spec = {"name": f"vs-official-hnn-{system}-{model}", "seeds": [seed],
                    "datasets": {system: {"use": dataset}},
                    "models": {model: {"use": adapter}},
                    "methods": {"train": {"use": "hnn/train", "total_steps": steps}},
                    "metrics": ["hnn/derivative-loss"]}
            harness = harness_side(case_dir / "harness", spec, {"test_loss": "test_loss"})
            cases.append(Case(label, official, harness))
    return cases


def all_rows() -> dict[str, Row]:
    rows = {"hnn": Row("hnn", "a greydanus/hamiltonian-nn checkout", 2000, hnn_cases,
                       "HNN spring and pendulum training, full batch; a step is one Adam "
                       "update (both run steps + 1)")}
    return rows


# --- the command ----------------------------------------------------------------------

def parse_pairs(values: list[str], what: str) -> dict[str, str]:
    """``NAME=VALUE`` pairs (each may hold several, comma-separated)."""
    pairs: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            name, sep, rest = item.partition("=")
            if not sep or not name or not rest:
                raise SystemExit(_usage_error(f"{what} {item!r}: expected NAME=VALUE"))
            pairs[name.strip()] = rest.strip()
    return pairs


def _usage_error(message: str) -> int:
    print(f"vs_official.py: error: {message}", file=sys.stderr)
    return 2


def parse_args(argv: list[str] | None, rows: dict[str, Row]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", action="append", default=[], metavar="NAME=PATH",
                    help=f"a row's official checkout; rows: {', '.join(rows)}")
    ap.add_argument("--rows", help="comma-separated rows to run (default: all)")
    ap.add_argument("--steps", action="append", default=[], metavar="NAME=N",
                    help="a row's number of steps (defaults: " + ", ".join(
                        f"{r.name}={r.steps}" for r in rows.values()) + ")")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="keep the work folders here (default: a temp folder)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    names = list(rows) if not args.rows else [r.strip() for r in args.rows.split(",")]
    official = parse_pairs(args.official, "--official")
    steps = parse_pairs(args.steps, "--steps")
    for name in [*names, *official, *steps]:
        if name not in rows:
            raise SystemExit(_usage_error(f"unknown row {name!r}; rows: {', '.join(rows)}"))
    for name, path in official.items():
        if not Path(path).exists():
            raise SystemExit(_usage_error(f"--official {name}={path}: no such path; give "
                                          f"the folder of {rows[name].what}"))
    try:
        args.steps = {n: int(v) for n, v in steps.items()}
    except ValueError:
        raise SystemExit(_usage_error(f"--steps {steps}: N must be an integer")) from None
    args.rows, args.official = names, {n: Path(p).resolve() for n, p in official.items()}
    return args


def run_rows(args: argparse.Namespace, rows: dict[str, Row], work: Path
             ) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for name in args.rows:
        row = rows[name]
        if name not in args.official:
            results.append({"row": name, "skipped": f"skipped: give --official {name}=PATH "
                            f"({row.what})"})
            continue
        steps = args.steps.get(name, row.steps)
        for case in row.cases(args.official[name], work / name, steps, args.seed):
            entry: dict[str, Any] = {"row": name, "case": case.label, "steps": steps}
            for side_name in ("official", "harness"):
                side: Side = getattr(case, side_name)
                print(f"[{name}] {case.label}: {side_name} ...", file=sys.stderr, flush=True)
                entry[side_name] = run_side(side)
            results.append(entry)
    return results


def fmt_headline(res: dict[str, Any]) -> str:
    if "error" in res:
        return "error: " + res["error"].splitlines()[-1][:200] if res["error"] else "error"
    return ", ".join(f"{k} {v:.4g}" for k, v in res["headline"].items())


def print_table(results: list[dict[str, Any]], rows: dict[str, Row]) -> None:
    print(f"side by side with the official code, 1 torch thread per side "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"{'row':9} {'case':22} {'side':9} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} "
          f"{'wall h/o':>8}  headline")
    for r in results:
        if "skipped" in r:
            print(f"{r['row']:9} {r['skipped']}")
            continue
        off, har = r["official"], r["harness"]
        ratio = har["wall_s"] / off["wall_s"] if off["wall_s"] > 0 else float("nan")
        for side_name, res, extra in (("official", off, ""), ("harness", har,
                                                             f"{ratio:.2f}")):
            print(f"{r['row']:9} {r['case'][:22]:22} {side_name:9} {res['wall_s']:>8.2f} "
                  f"{res['cpu_s']:>8.2f} {res['peak_mb']:>8.0f} {extra:>8}  "
                  f"{fmt_headline(res)}")
    for name in dict.fromkeys(r["row"] for r in results):
        if rows[name].note:
            print(f"  {name}: {rows[name].note}")


def main(argv: list[str] | None = None) -> int:
    rows = all_rows()
    try:
        args = parse_args(argv, rows)
    except SystemExit as exc:  # argparse's and ours: 2 for bad input, 0 for --help
        return exc.code if isinstance(exc.code, int) else 2
    with tempfile.TemporaryDirectory(prefix="vs-official-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        results = run_rows(args, rows, work)
    print_table(results, rows)
    if args.out:
        Path(args.out).write_text(json.dumps({"seed": args.seed, "rows": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
