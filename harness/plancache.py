"""The plan cache: re-running a spec whose every cell is recorded skips planning it.

Planning a run reads and validates the spec, imports each adapter's module to validate
its params (and, through them, torch), expands the cells and hashes their identities.
When every cell already has an ok record, all that work only confirms that nothing is
left to run. So after a run whose every cell (controls included) ended ok, the plan is
stored as ``<cache>/plans/<key>.json``: each cell's name, id, config, versions and
identity, and what the summary, claims and controls table need of the spec (its name,
description, hash, seeds, axes, claims, report rows, controls).

The key hashes everything the plan depends on: the spec file's bytes, the command
line's ``--set``/``--seeds``/``--only``/``--limit``/``--out``/``--controls``, the working
folder and cache folder, the harness's version and source stamp, every plugin's entry
point and source stamp (:func:`harness.manifest.entry_key`), the adapters' names and
versions, and the Python, torch and numpy versions. The entry also lists the files the
plan read beyond the spec itself (the files it ``extends``, the data fingerprints of
:mod:`harness.datacache`) with their hashes, and the data files behind those fingerprints
with their stamps (size and modification time). A later run with the same key uses the entry
when those files are unchanged and every cell's record is ok with the stored identity;
anything else (an edited spec or plugin, other options, a record missing, failed or
corrupt, ``--force``, an unreadable entry) is a miss: the run plans the spec as always.
A plan whose data must be loaded to be fingerprinted (a file-reading dataset that does not
name its files, :meth:`harness.Dataset.inputs`) is never stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from .plan import RunPlan
    from .registry import Registry

SCHEMA = 2  # 2: data files' stamps (datasets that read files)
PLANS_DIR = "plans"
MAX_ENTRIES = 300  # the oldest entries beyond this are removed when one is stored


def enabled() -> bool:
    return os.environ.get("HARNESS_NO_PLAN_CACHE", "") in ("", "0")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: str | Path) -> str | None:
    try:
        return _sha(Path(path).read_bytes())
    except OSError:
        return None


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def plugin_stamps(registry: Registry) -> list[str]:
    """Every plugin entry point with its package and source stamp, and each adapter's
    name, kind and version as the registry knows them (no adapter module imported)."""
    from . import manifest
    from .registry import GROUP, _package
    eps = [manifest.entry_key(ep, *_package(ep)) for ep in metadata.entry_points(group=GROUP)]
    adapters = [f"{n}|{i.kind}|{i.version}|{i.plugin}|{i.package}=={i.package_version}"
                for n, i in sorted(registry.adapters.items())]
    return sorted(eps) + adapters + [f"broken:{n}" for n in sorted(registry.broken)]


def plan_key(args: argparse.Namespace, registry: Registry, cache_dir: Path) -> str | None:
    """The key of this ``harness run`` command's plan, or None (no spec file to read)."""
    from . import __version__
    from .manifest import source_stamp
    try:
        spec_bytes = Path(args.spec).read_bytes()
    except OSError:
        return None
    parts = {
        "schema": SCHEMA, "cwd": os.getcwd(), "cache": str(Path(cache_dir).resolve()),
        "spec": str(args.spec), "spec_sha": _sha(spec_bytes),
        "set": list(args.set or []), "seeds": getattr(args, "seeds", None),
        "only": list(getattr(args, "only", None) or []), "limit": getattr(args, "limit", None),
        "out": getattr(args, "out", None), "controls": bool(getattr(args, "controls", False)),
        "harness": [__version__, source_stamp("harness")], "plugins": plugin_stamps(registry),
        "python": sys.version, "torch": _dist_version("torch"),
        "numpy": _dist_version("numpy"),
    }
    return _sha(json.dumps(parts, sort_keys=True, default=str).encode())[:32]


def entry_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / PLANS_DIR / f"{key}.json"


# -- the stand-ins for a spec and its cells, enough for the summary and the controls --
@dataclass
class CachedCell:
    """A planned cell as the cache stores it; it is done (an ok record has its identity)."""

    cell_id: str
    name: str
    spec_seed: int
    config: dict[str, Any]
    versions: dict[str, str]
    identity: str
    status: str = "done"
    out_root: str = ""

    @property
    def group(self) -> str:
        return str(self.config["group"])


@dataclass
class CachedSpec:
    """What :func:`harness.runner.build_summary` and the controls read of a spec."""

    name: str
    source: str
    seeds: list[int]
    control: str | None
    claim_ids: list[str]
    model: Any
    spec_hash: str
    axes: dict[str, list[str]] = field(default_factory=dict)

    def hash(self) -> str:
        return self.spec_hash

    def axis_values(self) -> dict[str, set[str]]:
        return {k: set(v) for k, v in self.axes.items()}


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json", by_alias=True, exclude_unset=True) for i in items]


def _spec_entry(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "source": spec.source, "seeds": list(spec.seeds),
            "control": spec.control, "claim_ids": list(spec.claim_ids), "hash": spec.hash(),
            "axes": {k: sorted(v) for k, v in spec.axis_values().items()},
            "description": spec.model.description, "expect": _dump(spec.model.expect),
            "report": _dump(spec.model.report),
            "controls": [{"name": c.name, "text": c.text, "must_fail": list(c.must_fail)}
                         for c in spec.model.controls]}


def _cached_spec(data: dict[str, Any]) -> CachedSpec:
    from .specmodel import Claim, ReportItem
    model = SimpleNamespace(
        description=data["description"],
        expect=[Claim.model_validate(c) for c in data["expect"]],
        report=[ReportItem.model_validate(r) for r in data["report"]],
        controls=[SimpleNamespace(**c) for c in data["controls"]])
    return CachedSpec(name=data["name"], source=data["source"], seeds=list(data["seeds"]),
                      control=data["control"], claim_ids=list(data["claim_ids"]), model=model,
                      spec_hash=data["hash"], axes=dict(data["axes"]))


def _plan_entry(plan: RunPlan) -> dict[str, Any]:
    return {"out_dir": str(plan.out_dir), "control": plan.control,
            "spec": _spec_entry(plan.spec),
            "cells": [{"cell_id": c.cell_id, "name": c.name, "spec_seed": c.spec_seed,
                       "config": c.config, "versions": c.versions, "identity": c.identity}
                      for c in plan.cells]}


def _cached_plan(data: dict[str, Any]) -> RunPlan:
    from .plan import RunPlan
    cells: list[Any] = [CachedCell(**c) for c in data["cells"]]
    spec: Any = _cached_spec(data["spec"])
    return RunPlan(spec=spec, out_dir=Path(data["out_dir"]), cells=cells,
                   control=data["control"])


# -- storing --------------------------------------------------------------------------
def _all_recorded(plan: RunPlan) -> bool:
    from .results import ResultsDir
    results = ResultsDir(plan.out_dir)
    for cell in plan.cells:
        record = results.read_record(cell.cell_id)
        if not record or record.get("status") != "ok" or record.get("identity") != cell.identity:
            return False
    return True


def _inputs(spec: Any, plans: list[RunPlan],
            cache_dir: Path) -> tuple[list[list[str]], list[list[str]]] | None:
    """The files the plan read besides the spec file, with their hashes, and the data
    files behind the fingerprints with their stamps (:func:`harness.datacache.path_stamp`);
    None when one cannot be relied on (data loaded to be fingerprinted, a file unreadable)."""
    from .datacache import fingerprint_path
    paths: list[str] = [str(Path(f).resolve()) for f in spec.doc.files[1:]]
    stamps: list[list[str]] = []
    for plan in plans:
        for cell in plan.cells:
            if cell.dataset is None:
                continue
            found = fingerprint_path(cell.dataset, cell.data_seed, cache_dir)
            if found is None:
                return None
            if str(found) not in paths:
                paths.append(str(found))
                try:
                    known = json.loads(found.read_text(encoding="utf-8")).get("inputs") or []
                except (OSError, ValueError, AttributeError):
                    return None
                stamps += [[str(a), str(b)] for a, b in known if [a, b] not in stamps]
    out: list[list[str]] = []
    for name in paths:
        digest = _file_sha(name)
        if digest is None:
            return None
        out.append([name, digest])
    return out, stamps


def _round_trips(entry: dict[str, Any]) -> bool:
    """The entry reads back as what was planned (no tuple turned list, claims unchanged)."""
    if json.loads(json.dumps(entry)) != entry:
        return False
    for plan in entry["plans"]:
        again = _spec_entry(_cached_spec(plan["spec"]))
        if again != plan["spec"]:
            return False
    return True


def store(key: str | None, cache_dir: Path, spec: Any, plans: list[RunPlan],
          executors: list[str], caught: list[tuple[str, str]]) -> bool:
    """Store the plan of a run when every cell of ``plans`` (the main plan first, then
    the controls') has an ok record with its identity; False when it was not stored."""
    from .trust import code_uses
    if key is None or not enabled():
        return False
    try:
        if not all(_all_recorded(p) for p in plans):
            return False
        found = _inputs(spec, plans, cache_dir)
        if found is None:
            return False
        inputs, stamps = found
        entry = {"schema": SCHEMA, "key": key, "inputs": inputs, "stamps": stamps,
                 "jobs": spec.model.settings.jobs, "executors": sorted(executors),
                 "needs_trust": bool(code_uses(c for p in plans for c in p.cells)),
                 "warnings": [list(w) for w in caught],
                 "plans": [_plan_entry(p) for p in plans]}
        if not _round_trips(entry):
            return False
        from .results import atomic_write_text
        path = entry_path(cache_dir, key)
        atomic_write_text(path, json.dumps(entry))
        _prune(path.parent)
    except (OSError, TypeError, ValueError):  # a read-only cache costs only time
        return False
    return True


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in entries[:-MAX_ENTRIES]:
        old.unlink(missing_ok=True)


# -- using ---------------------------------------------------------------------------
@dataclass
class CachedRun:
    """A stored plan: the main plan and its controls', and what the command checks."""

    plan: RunPlan
    controls: dict[str, RunPlan]
    jobs: int
    executors: list[str]
    needs_trust: bool
    warnings: list[tuple[str, str]]

    def still_done(self) -> bool:
        """Every cell still has an ok record with its stored identity."""
        try:
            return all(_all_recorded(p) for p in [self.plan, *self.controls.values()])
        except Exception:  # an unreadable folder: the full path says what is wrong
            return False

    def replay_warnings(self) -> None:
        """The warnings that loading the spec gave, shown again."""
        from .errors import SpecWarning
        from .registry import PluginWarning
        kinds = {"SpecWarning": SpecWarning, "PluginWarning": PluginWarning}
        for kind, message in self.warnings:
            warnings.warn(kinds.get(kind, UserWarning)(message), stacklevel=2)


def lookup(key: str | None, cache_dir: Path) -> CachedRun | None:
    """The stored plan of ``key`` if it reads back and its input files are unchanged."""
    if key is None or not enabled():
        return None
    try:
        entry = json.loads(entry_path(cache_dir, key).read_text(encoding="utf-8"))
        if not isinstance(entry, dict) or entry.get("schema") != SCHEMA \
                or entry.get("key") != key:
            return None
        for path, digest in entry["inputs"]:
            if _file_sha(path) != digest:
                return None
        if entry["stamps"]:
            from .datacache import path_stamp
            if any(path_stamp(path) != stamp for path, stamp in entry["stamps"]):
                return None
        plans = [_cached_plan(p) for p in entry["plans"]]
        main, rest = plans[0], plans[1:]
        controls = {str(p.control): p for p in rest}
        for cplan in rest:
            cplan.adopt_from = main.out_dir
        main.controls = controls
        hit = CachedRun(plan=main, controls=controls, jobs=int(entry["jobs"]),
                        executors=[str(e) for e in entry["executors"]],
                        needs_trust=bool(entry["needs_trust"]),
                        warnings=[(str(k), str(m)) for k, m in entry["warnings"]])
    except Exception:  # absent, corrupt or of another layout: plan as usual
        return None
    return hit  # its records are checked once the results folder is locked (still_done)
