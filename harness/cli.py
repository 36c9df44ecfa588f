"""The ``harness`` command: run, validate, list, schema, show, verify, report, query."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.text import Text

from .cachedir import default_cache
from .commands import add_cell_filters, register
from .errors import HarnessError, SpecWarning

if TYPE_CHECKING:  # the registry is imported when a command needs it (fast --help)
    from .registry import Registry

DEFAULT_OUT = Path("results")
DIRECT_EXECUTORS = ("inprocess", "pool")  # a plan-cache hit runs no cell: no executor


def _registry(args: argparse.Namespace) -> Registry:
    from .registry import get_registry
    return get_registry(strict=getattr(args, "strict_plugins", False))


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise HarnessError(f"--seeds takes comma-separated integers, got {text!r}",
                           hint="e.g. --seeds 0,1,2") from None


def _load(args: argparse.Namespace, registry: Registry) -> Any:
    from .spec import load_spec
    return load_spec(args.spec, registry, overrides=args.set or [],
                     seeds=_parse_seeds(getattr(args, "seeds", None)))


def _plugins_line(registry: Registry) -> str:
    pkgs = sorted({f"{info.package}-{info.package_version}" for info in registry.adapters.values()})
    return "plugins: " + ", ".join(pkgs)


class RunProgress:
    """Cells done, the current cell and its steps: a live bar on a terminal, one line
    per finished cell otherwise (logs, CI)."""

    def __init__(self, console: Console, spec_name: str, out_dir: Path) -> None:
        self.console, self.spec_name, self.out_dir = console, spec_name, out_dir
        self.n = self.total = 0
        self.bar: Any = None

    def __enter__(self) -> RunProgress:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), console=self.console, transient=True)
            self.bar.start()
            self.cells = self.bar.add_task("cells", total=None)
            self.steps = self.bar.add_task("", total=None, visible=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def part(self, label: str, out_dir: Path, tag: str) -> Any:
        """The event callback of one of several plans shown by this display (a control):
        its plan line says ``label`` and its cell lines start with ``tag``."""
        def on_event(kind: str, info: dict[str, Any]) -> None:
            self.on_event(kind, info, label=label, out_dir=out_dir, tag=tag)
        return on_event

    def on_event(self, kind: str, info: dict[str, Any], label: str | None = None,
                 out_dir: Path | None = None, tag: str = "") -> None:
        if kind == "plan":
            self.total += info["todo"]
            notes = [f"{info[k]} {what}" for k, what in
                     (("restored", "restored"), ("adopted", "unchanged from the main run"))
                     if info.get(k)]
            restored = f" ({', '.join(notes)})" if notes else ""
            self.console.print(f"{label or self.spec_name}: {info['todo']} cell(s) to run, "
                               f"{info['done']} already done{restored} -> "
                               f"{out_dir or self.out_dir}")
            if info.get("superseded"):
                self.console.print(f"{info['superseded']} finished cell(s) of another identity "
                                   f"moved to {(out_dir or self.out_dir) / 'superseded'}/ "
                                   "(kept, not overwritten; docs/results.md)")
            if self.bar is not None:
                self.bar.update(self.cells, total=self.total)
        elif kind == "cell":
            self.n += 1
            rec = info["record"]
            timings = rec.get("timings", {})
            took = timings.get("total_s", 0.0)
            cpu = timings.get("cpu_s", 0.0)
            mark = ("ok" if rec["status"] == "ok"
                    else f"FAILED: {rec['error']['message'].splitlines()[0]}")
            worker = rec.get("worker")
            where = f" on {worker.get('host')} pid {worker.get('pid')}" if worker else ""
            self.console.print(f"[{self.n}/{self.total}] {tag}{info['plan'].name} {mark} "
                               f"({took:.1f}s, cpu {cpu:.1f}s{where})")
            if self.bar is not None:
                self.bar.update(self.cells, completed=self.n)
        elif kind == "step" and self.bar is not None:
            line = f"  {info['cell']}: {info['label']}"
            self.bar.update(self.steps, description=line, completed=info["done"],
                            total=info["total"], visible=True)


def cmd_run(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.timeout is not None:  # the same as --set settings.timeout_s=N (controls too)
        if not args.timeout > 0 or args.timeout == float("inf"):
            raise HarnessError(f"--timeout must be a positive number of seconds, got "
                               f"{args.timeout!r}", hint="e.g. --timeout 600")
        args.set = [*(args.set or []), f"settings.timeout_s={args.timeout!r}"]
    from . import plancache
    if args.mlflow:  # the user's choice only: a spec cannot turn MLflow on
        os.environ["HARNESS_MLFLOW_URI"] = args.mlflow
    registry = _registry(args)
    key = plancache.plan_key(args, registry, default_cache())
    if not args.force:  # every cell recorded: no spec to load, no adapter module imported
        code = _run_cached(args, plancache.lookup(key, default_cache()), registry, out, err)
        if code is not None:
            return code
    from . import workers
    try:
        return _run_planned(args, registry, key, out, err)
    finally:
        workers.discard_spares()


def _peek_jobs(args: argparse.Namespace) -> int:
    """The worker count the spec will ask for, read before it is loaded (1 when unsure:
    a spec with problems is reported by the real load)."""
    if args.jobs is not None:
        return int(args.jobs)
    try:
        from .spec import read_document
        with warnings.catch_warnings():  # the real load shows them
            warnings.simplefilter("ignore")
            doc = read_document(args.spec, args.set or [],
                                _parse_seeds(getattr(args, "seeds", None)))
        jobs = (doc.data.get("settings") or {}).get("jobs", 1)
    except Exception:
        return 1
    return jobs if isinstance(jobs, int) and not isinstance(jobs, bool) else 1


def _run_planned(args: argparse.Namespace, registry: Registry, key: Any, out: Console,
                 err: Console) -> int:
    from . import plancache, workers
    from .commands import plan_inputs
    from .outdir import check_out_dir
    if args.executor in (None, "pool") and not args.dask_address:
        jobs = _peek_jobs(args)
        if 1 < jobs <= 64:  # their imports overlap loading the spec and planning it
            workers.prestart(jobs)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:  # kept for the plan cache
            spec = _load(args, registry)
    finally:
        for w in caught:  # shown as they would have been
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    out_dir, cell_filters = plan_inputs(args, spec)
    executors = registry.executors()
    jobs = args.jobs if args.jobs is not None else spec.model.settings.jobs
    address = args.dask_address
    name = args.executor or ("dask" if address else "pool" if jobs > 1 else "inprocess")
    if name not in executors:
        raise HarnessError(f"unknown executor {name!r}",
                           hint="available: " + ", ".join(sorted(executors)))
    if address and name != "dask":
        raise HarnessError(f"--dask-address is for the dask executor, not {name!r}",
                           hint="use --executor dask, or drop --dask-address")
    executor = executors[name](jobs=jobs, **({"address": address} if address else {}))
    if args.controls and not spec.model.controls:
        if spec.model.expect:
            raise HarnessError(f"{args.spec}: the spec has claims but no `controls:`",
                               hint="add controls (docs/controls.md) or run without "
                                    "--controls")
        # nothing to falsify: a report-only spec runs as without --controls
        err.print(f"{args.spec}: no claims, so no controls to run (--controls has nothing "
                  f"to falsify)", highlight=False)
        args.controls = False
    check_out_dir(out_dir)
    err.print(_plugins_line(registry), highlight=False)
    from .lock import locked
    with locked(out_dir, wait=args.wait):
        try:
            code, plans = _run_locked(args, spec, out_dir, cell_filters, executor, registry,
                                      out, err)
        finally:
            close = getattr(executor, "close", None)
            if callable(close):
                close()
        known = [(w.category.__name__, str(w.message)) for w in caught]
        if all(kind in ("SpecWarning", "PluginWarning") for kind, _ in known):
            plancache.store(key, default_cache(), spec, plans, list(executors), known)
    return code


class _NoCells:
    """The executor of a run whose every cell is recorded (a plan-cache hit)."""

    name = "inprocess"
    many_folders = True

    def run(self, cells: list[Any], out_root: str, finished: Any, step: Any) -> None:
        if cells:  # cannot happen: the hit's cells are all done
            raise HarnessError("the plan cache found cells to run", hint="run with --force")


def _run_cached(args: argparse.Namespace, hit: Any, registry: Registry, out: Console,
                err: Console) -> int | None:
    """Run from a plan-cache hit; None when the full path must run instead (an option
    the hit cannot honour, or a record that changed before the folder was locked)."""
    if hit is None:
        return None
    jobs = args.jobs if args.jobs is not None else hit.jobs
    name = args.executor or ("dask" if args.dask_address else "pool" if jobs > 1
                             else "inprocess")
    if (name not in hit.executors or name not in DIRECT_EXECUTORS
            or (hit.needs_trust and not args.trust_code)):
        return None
    from .lock import locked
    from .outdir import check_out_dir
    out_dir = hit.plan.out_dir
    check_out_dir(out_dir)
    with locked(out_dir, wait=args.wait):
        if not hit.still_done():
            return None
        hit.replay_warnings()
        err.print(_plugins_line(registry), highlight=False)
        controls = hit.controls if args.controls else None
        return _execute(args, hit.plan, lambda: controls, _NoCells(), registry, out, err)


def _run_locked(args: argparse.Namespace, spec: Any, out_dir: Path, cell_filters: Any,
                executor: Any, registry: Registry, out: Console, err: Console
                ) -> tuple[int, list[Any]]:
    from .plan import make_plan
    from .trust import require_trust
    cache = default_cache()
    plan = make_plan(spec, out_dir, cache, args.force, **cell_filters)
    if not plan.todo and not args.controls:  # nothing to run: the spare workers go now
        from .workers import discard_spares
        discard_spares()
    require_trust(plan.cells, args.trust_code, args.spec)
    cplans: dict[str, Any] = {}

    def controls() -> dict[str, Any] | None:
        if not args.controls:
            return None
        from .controls import plan_controls
        cplans.update(plan_controls(plan, cache, args.force, **cell_filters))
        require_trust([c for cp in cplans.values() for c in cp.cells], args.trust_code,
                      args.spec)
        return cplans

    code = _execute(args, plan, controls, executor, registry, out, err)
    return code, [plan, *cplans.values()]


def _execute(args: argparse.Namespace, plan: Any, get_controls: Any, executor: Any,
             registry: Registry, out: Console, err: Console) -> int:
    """Run a plan (and, after it, the plans ``get_controls`` gives), print the summary."""
    from .claims import claims_ok
    from .report import print_summary
    from .results import ResultsDir
    from .runner import run_plan, run_plans
    spec_name, out_dir = plan.spec.name, plan.out_dir
    with RunProgress(err, spec_name, out_dir) as progress:
        report = run_plan(plan, executor=executor, on_event=progress.on_event,
                          hook=registry.hooks)
    summary = report.summary
    code = report.exit_code
    cplans = get_controls()
    if cplans is not None:
        from .controls import control_entries, falsification
        with RunProgress(err, f"{spec_name} controls", out_dir) as progress:
            done = run_plans(list(cplans.values()), executor=executor, hook=registry.hooks,
                             on_events=[progress.part(f"{spec_name} control {cname}",
                                                      cplan.out_dir, f"{cname}: ")
                                        for cname, cplan in cplans.items()])
        reports = dict(zip(cplans, done, strict=True))
        table = falsification(summary, control_entries(plan),
                              {n: r.summary for n, r in reports.items()})
        summary["controls"] = table
        ResultsDir(out_dir).write_summary(summary)
        if code == 0 and not table["ok"]:
            code = 1
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary, out, getattr(args, "metrics", None))
    claims = summary["claims"]
    counts = {s: sum(c.get("status") == s for c in claims)
              for s in ("PASS", "FAIL", "XFAIL", "XPASS")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"
    err.print(f"{len(report.ran)} ran, {len(report.skipped)} reused, {len(report.failed)} failed;"
              f" claims: {text}{'' if claims_ok(claims) else ' (not ok)'}; results in {out_dir}",
              highlight=False)
    return code


def cmd_validate(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .cells import expand
    from .controls import unnamed_claims
    registry = _registry(args)
    spec = _load(args, registry)
    cells = expand(spec)
    for cspec in spec.controls.values():
        expand(cspec)  # a control restricted to no cells is an error too
    out.print(f"{args.spec}: valid — {len(cells)} cells, {len(spec.model.expect)} claims, "
              f"{len(spec.model.controls)} controls", highlight=False)
    unnamed = unnamed_claims(spec)
    for cid in unnamed:
        err.print(f"warning: claim {cid!r} is named by no control's must_fail: nothing shows "
                  "it can fail", highlight=False)
    if unnamed and args.strict:
        err.print(f"error: {len(unnamed)} claim(s) not falsifiable by the spec's controls "
                  "(--strict)", highlight=False)
        return 1
    return 0


def cmd_list(args: argparse.Namespace, out: Console, err: Console) -> int:
    from rich.table import Table
    registry = _registry(args)
    kind = args.kind.rstrip("s") if args.kind else None
    table = Table(box=None, pad_edge=False)
    for col in ("name", "kind", "description", "from"):
        table.add_column(col)
    for name in registry.names(kind):
        info = registry.adapters[name]
        table.add_row(name, info.kind, info.description,
                      f"{info.package} {info.package_version} ({info.plugin}) v{info.version}")
    out.print(table)
    for name, reason in registry.broken.items():
        err.print(f"warning: plugin {name!r} not loaded: {reason}", style="yellow")
    return 0


def cmd_schema(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .schema import schema_json
    print(schema_json(_registry(args)))
    return 0


def cmd_show(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .report import print_summary
    from .results import ResultsDir
    if getattr(args, "controls", False):
        return cmd_controls(args, out, err)
    summary = ResultsDir(Path(args.dir)).summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary, out, args.metrics)
        from .supersede import print_superseded
        print_superseded(Path(args.dir), out)
    return 0


def cmd_controls(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .report import print_controls
    from .results import ResultsDir
    summary = ResultsDir(Path(args.dir)).summary()
    table = summary.get("controls")
    if not table:
        raise HarnessError(f"{args.dir}: no controls were run for this results folder",
                           hint="run `harness run SPEC --out DIR --controls`")
    print_controls(table, out)
    return 0 if table["ok"] else 1


def cmd_report(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .report import print_summary, write_html
    from .results import ResultsDir
    registry = _registry(args)
    out_dir = Path(args.dir)
    summary = ResultsDir(out_dir).summary()
    sections = [s for group in registry.hooks.harness_report_sections(
        summary=summary, out_dir=str(out_dir)) for s in (group or [])]
    print_summary(summary, out)
    for title, _ in sections:
        out.print(f"section: {title}", highlight=False)
    path = write_html(summary, out_dir, sections)
    err.print(f"report written to {path}", highlight=False)
    return 0


def cmd_verify(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .verify import verify
    rows = verify(Path(args.dir), _registry(args), default_cache(),
                  on_cell=None if args.quiet else
                  lambda name: err.print(f"re-ran {name}", highlight=False),
                  spec=args.spec, trust_code=args.trust_code)
    bad = [r for r in rows if not r["identical"]]
    for r in rows:
        if r["identical"] and args.quiet:
            continue
        if r["metric"] == "-":
            out.print(f"NOT RUN    {r['cell']}: {r['error']}", highlight=False)
        elif r["identical"]:
            out.print(f"identical  {r['cell']}  {r['metric']} = {r['recorded']}", highlight=False)
        else:
            out.print(f"DIFFERENT  {r['cell']}  {r['metric']}: recorded {r['recorded']}, "
                      f"re-run {r['rerun']}, diff {r['diff']}"
                      + (f" ({r['error']})" if r["error"] else ""), highlight=False)
    out.print(f"{len(rows) - len(bad)}/{len(rows)} metrics identical", highlight=False)
    return 0 if rows and not bad else 1


def cmd_query(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .results import ResultsDir
    cols, rows = ResultsDir(Path(args.dir)).query(args.sql)
    print("\t".join(cols))
    for row in rows:
        print("\t".join(str(v) for v in row))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    parser.add_argument("--strict-plugins", action="store_true",
                        help="fail when an installed plugin cannot be loaded")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def spec_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("spec", help="the spec YAML file")
        p.add_argument("--set", action="append", metavar="PATH=VALUE",
                       help="override a value, e.g. methods.train.lr=0.01 (repeatable)")
        p.add_argument("--seeds", help="override the seeds, e.g. 0,1,2")

    p = sub.add_parser("run", help="run every cell of a spec and check its claims")
    spec_args(p)
    p.add_argument("--out", help="results folder (default results/<spec name>)")
    p.add_argument("--force", action="store_true", help="re-run cells that are already done")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes (pool executor, dask local cluster); default: the "
                   "spec's settings.jobs")
    p.add_argument("--executor", help="executor plugin name (inprocess, pool, dask, ...)")
    p.add_argument("--dask-address", metavar="ADDRESS",
                   help="scheduler of an existing Dask cluster, e.g. tcp://host:8786 (implies "
                   "--executor dask; default $HARNESS_DASK_ADDRESS, else a local cluster of "
                   "--jobs workers); see docs/distributed.md")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--controls", action="store_true",
                   help="also run the spec's controls and print the falsification table")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop a cell running longer and record it as failed (overrides "
                   "settings.timeout_s; cells then run in worker processes)")
    p.add_argument("--trust-code", action="store_true",
                   help="allow adapters to run code the spec names (e.g. evaluate/metric "
                   "path: DIR)")
    p.add_argument("--wait", action="store_true",
                   help="if another run is writing to --out, wait for it instead of exiting 2")
    add_cell_filters(p)
    p.add_argument("--metrics", metavar="PATTERN", help="metrics to print, as in `show`")
    p.add_argument("--mlflow", metavar="URI", help="log each cell to MLflow at URI (a local "
                   "folder or a tracking server; same as HARNESS_MLFLOW_URI)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a spec without running it")
    spec_args(p)
    p.add_argument("--strict", action="store_true",
                   help="fail when a claim is named by no control's must_fail")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("controls", help="print a results folder's falsification table")
    p.add_argument("dir", help="results folder of a `harness run --controls`")
    p.set_defaults(func=cmd_controls)

    p = sub.add_parser("list", help="list adapters")
    p.add_argument("kind", nargs="?", choices=["datasets", "models", "methods", "metrics",
                                               "optimizers", "selections", "observers"])
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("schema", help="print the JSON Schema of a spec")
    p.set_defaults(func=cmd_schema)

    for name, func, text in (("show", cmd_show, "print a results folder's aggregates and claims"),
                             ("report", cmd_report, "write report.html with plots"),
                             ("verify", cmd_verify, "re-execute every cell and compare metrics")):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", help="results folder")
        if name == "verify":
            p.add_argument("--spec", help="the spec the folder was run from (default: the "
                           "summary's spec_source, if unchanged)")
            p.add_argument("--trust-code", action="store_true",
                           help="allow adapters to run code the cells name")
        if name == "show":
            p.add_argument("--json", action="store_true")
            p.add_argument("--controls", action="store_true",
                           help="print the falsification table only")
            p.add_argument("--metrics", metavar="PATTERN",
                           help="metrics to show: comma-separated globs (e.g. 'acc*,loss'), "
                           "or all; default: the claimed metrics")
        if name == "verify":
            p.add_argument("--quiet", "-q", action="store_true",
                           help="print only the metrics that differ and the total")
        p.set_defaults(func=func)

    p = sub.add_parser("query", help="run SQL on a results folder's index.sqlite")
    p.add_argument("dir")
    p.add_argument("sql")
    p.set_defaults(func=cmd_query)
    register(sub, spec_args)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # markup off: names and messages are printed as they are (brackets included)
    out = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True, highlight=False, markup=False,
                  width=None if sys.stderr.isatty() else 200)
    from .registry import PluginWarning
    warnings.simplefilter("default", PluginWarning)
    warnings.simplefilter("default", SpecWarning)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"  # type: ignore
    try:
        from .cliargs import check_cli_args
        check_cli_args(args)
        return int(args.func(args, out, err))
    except HarnessError as exc:
        err.print(Text("error: ", style="bold red") + Text(exc.render()), soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted: finished cells are recorded; run again to resume")
        return 130
    except BrokenPipeError:  # `harness show DIR --json | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # a full disk, a read-only folder: outside every cell's own try
        from .outdir import storage_error
        found = storage_error(exc)
        if found is None:
            raise
        message, hint, code = found
        err.print(Text("error: ", style="bold red") + Text(f"{message}\n  hint: {hint}"),
                  soft_wrap=True)
        return code


def entry() -> None:
    code = main()
    if "torch" in sys.modules:  # its teardown is half a second of every such command
        from .quickexit import quick_exit
        quick_exit(code)
    sys.exit(code)
