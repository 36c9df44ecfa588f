"""Side by side with the official implementations: the official code and the harness's
adapter on the same work (same data sizes, model size, number of steps, one torch thread),
each in its own subprocess, in one run (issue 20).

    python benchmarks/vs_official.py --official hnn=PATH --official d3g=PATH \\
        --official sb=PATH --official supsup=PATH --official bigbench=LM_EVAL_PYTHON \\
        [--rows hnn,d3g] [--steps hnn=2000] [--seed 0] [--work DIR] [--out results.json]

``PATH`` is a local checkout of the paper's official repository (greydanus/hamiltonian-nn,
uber-research/D3G, angelajiang/SelectiveBackprop, RAIVNLab/supsup); for ``bigbench`` it is
a Python with lm-evaluation-harness installed. Nothing is
downloaded and nothing from those repositories is part of the project: the official side
imports the checkout's own modules by path at run time, through the small shims in this
script's ``_official_*.py`` siblings (written to a temporary folder). A row whose checkout
is not given prints ``skipped: give --official NAME=PATH`` and the script still exits 0.

Per row and case, each side is one process: wall time, CPU time (user + system of the
process and its children, from ``wait4``), peak resident memory, and the headline number.
The harness side is the real command, ``harness run`` on a spec written for the case (the
adapter's spec with the sizes of the official run), so it pays the runner's whole cost
(start-up, spec loading, data fingerprint, records, summary). All harness sides share one
fresh cache folder whose plugin manifest is written first, untimed, by ``harness list``
(as by any first ``harness`` command): without it, the first command imports every
installed plugin (torch, sklearn, transformers...), several seconds of CPU. Both sides run
with ``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``. The ratio is harness wall /
official wall, measured in the same run; on a loaded machine CPU time is the steadier one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _official_bigbench  # noqa: E402
import _official_d3g  # noqa: E402  (siblings of this script)
import _official_hnn  # noqa: E402
import _official_sb  # noqa: E402
import _official_supsup  # noqa: E402
from _official_common import Row, Side, run_side, warm_harness  # noqa: E402


def all_rows() -> dict[str, Row]:
    """The rows, in the issue's order (``bigbench`` last)."""
    return {
        "hnn": Row("hnn", "a greydanus/hamiltonian-nn checkout", 2000, _official_hnn.cases,
                   "HNN spring and pendulum training, full batch; a step is one Adam update "
                   "(both sides run steps + 1)"),
        "d3g": Row("d3g", "an uber-research/D3G checkout", 5000, _official_d3g.cases,
                   "Pendulum-v1, 256-unit layers, batch 256, first 1,000 steps random, 10 "
                   "evaluation episodes every 1,000; a step is one environment step"),
        "sb": Row("sb", "an angelajiang/SelectiveBackprop checkout", 5, _official_sb.cases,
                  "the selector alone on one stream of losses (10,000 examples, batches "
                  "of 128, beta 3, one epoch primed); a step is one epoch of the stream"),
        "supsup": Row("supsup", "a RAIVNLab/supsup checkout", 100, _official_supsup.cases,
                      "SupSup GNu on the harness's 10 permuted-digits tasks, 64-256-256-500 "
                      "fixed signed-constant weights, threshold masks, RMSprop lr 1e-3, batch "
                      "128, one-shot entropy inference on test batches of 16 (the entropy of "
                      "their first example, or of the whole batch); a step is one "
                      "optimizer step of one task"),
        "bigbench": Row("bigbench", "a Python with lm-evaluation-harness (lm_eval) installed",
                        100, _official_bigbench.cases,
                        "BIG-bench intent_recognition, 0 shots, SmolLM2-135M float32, "
                        "batch 8; a step is one example; the official side is lm-eval"),
    }


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
    # absolute, not resolved: a venv's python is a symlink to the base interpreter, and
    # running the link's target loses the venv (its site-packages, lm_eval, torch)
    args.rows, args.official = names, {n: Path(os.path.abspath(p))
                                       for n, p in official.items()}
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
        if not (work / "harness-cache").exists():
            warm_harness(work / "harness-cache")
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
    return ", ".join(f"{k} {v:.6g}" for k, v in res["headline"].items())


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
