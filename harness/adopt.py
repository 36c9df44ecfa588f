"""Adopt finished cells from another results folder instead of running them again.

A control changes part of a spec (a method's param, say); the cells it leaves untouched,
a baseline, the oracle, a reference model, have exactly the identity they had in the main
run. Running them again would spend the same time to get the same record, so before a
control runs, each of its unfinished cells whose main-run record is ``ok`` with the same
identity is copied into the control's folder (record, examples and artifacts together)
and counts as done. The copied record says where it came from (``adopted_from``); nothing
in the source folder changes. Identity covers the cell's config, the adapters' versions,
the data fingerprint and the settings, so a cell whose work differs in any way runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .results import RECORD, ResultsDir, atomic_write_json


def adopt(plan: Any, source: Path) -> int:
    """Copy into ``plan``'s folder the ok records of ``source`` that have the identity of
    one of the plan's unfinished cells; those cells become done. Returns how many."""
    source = Path(source)
    if source.resolve() == Path(plan.out_dir).resolve():
        return 0
    src, dst = ResultsDir(source), ResultsDir(plan.out_dir)
    count = 0
    for cell in plan.cells:
        if cell.status == "done":
            continue
        record = src.read_record(cell.cell_id)
        if not record or record.get("status") != "ok" or record.get("identity") != cell.identity:
            continue
        target = dst.cell_dir(cell.cell_id)
        staging = target.with_name(f".{cell.cell_id}.adopting")
        if staging.exists():
            shutil.rmtree(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src.cell_dir(cell.cell_id), staging, symlinks=True)
        record["adopted_from"] = str(src.cell_dir(cell.cell_id))
        atomic_write_json(staging / RECORD, record)
        if target.exists():  # an unfinished or failed record: the cell would re-run anyway
            shutil.rmtree(target)
        os.replace(staging, target)
        cell.status = "done"
        count += 1
    return count
