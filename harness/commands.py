"""The commands beyond the core loop: ``plan``, ``compare``, ``runs``, ``describe``.

Each is a parser here and a call into its own module; ``harness.cli`` adds them with
:func:`register`. Heavy modules are imported when a command runs, not at start-up.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_cell_filters(p: argparse.ArgumentParser) -> None:
    """``--only`` and ``--limit``, shared by ``run`` and ``plan``."""
    p.add_argument("--only", action="append", metavar="AXIS=VALUE,...",
                   help="only the cells whose axes match, e.g. dataset=wine,lr=0.01 "
                   "(repeatable: a cell matching any one is kept)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="at most N examples per split, for a quick look; part of each "
                   "cell's identity (default folder results/<spec>-limit<N>)")


def plan_inputs(args: argparse.Namespace, spec: Any) -> tuple[Path, dict[str, Any]]:
    """The results folder and ``make_plan`` keywords that ``--out/--only/--limit`` give."""
    from .planview import check_limit, default_out, parse_only
    limit = check_limit(getattr(args, "limit", None))
    only = parse_only(getattr(args, "only", None), spec)
    out_dir = Path(args.out) if getattr(args, "out", None) else default_out(spec.name, limit)
    return out_dir, {"only": only, "limit": limit}


def cmd_plan(args: argparse.Namespace, out: Any, err: Any) -> int:
    from .cli import _load, _registry, default_cache
    from .plan import make_plan
    from .planview import plan_rows, print_plan
    spec = _load(args, _registry(args))
    out_dir, kw = plan_inputs(args, spec)
    plan = make_plan(spec, out_dir, default_cache(), args.force, **kw)
    data = plan_rows(plan)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_plan(data, out)
    return 0


def cmd_compare(args: argparse.Namespace, out: Any, err: Any) -> int:
    from .compare import compare, load_pair, print_compare
    a, b = load_pair(args.a, args.b)
    data = compare(a, b, args.metrics)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_compare(data, args.a, args.b, out)
    return 0


def cmd_runs(args: argparse.Namespace, out: Any, err: Any) -> int:
    from .runs import list_runs, print_runs
    root = Path(args.dir)
    rows = list_runs(root)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_runs(rows, root, out)
    return 0


def cmd_describe(args: argparse.Namespace, out: Any, err: Any) -> int:
    from .cli import _registry
    from .describe import describe, print_description
    data = describe(args.adapter, _registry(args))
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print_description(data, out)
    return 0


def register(sub: Any, spec_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the commands to the ``harness`` parser's subcommands."""
    p = sub.add_parser("plan", help="list a spec's cells: done, to run, estimated time")
    spec_args(p)
    add_cell_filters(p)
    p.add_argument("--out", help="results folder (default results/<spec name>)")
    p.add_argument("--force", action="store_true", help="plan as `run --force` would")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("compare", help="two results folders side by side")
    p.add_argument("a", help="results folder A")
    p.add_argument("b", help="results folder B")
    p.add_argument("--metrics", metavar="PATTERN",
                   help="metrics to show: comma-separated globs, or all (default: the "
                   "claimed metrics)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("runs", help="list past runs under a folder (their SQLite indexes)")
    p.add_argument("dir", nargs="?", default="results", help="folder to search (results)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("describe", help="an adapter's params, components, outputs, package")
    p.add_argument("adapter", help="adapter name, e.g. torch/train-classifier")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_describe)


__all__ = ["add_cell_filters", "plan_inputs", "register"]
