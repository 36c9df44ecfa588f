"""Controls: run a spec's named broken variants and show that each claim can fail.

Each control of a spec (``controls:``) is a variant of it that a reader accepts as broken:
the method without its key idea, or with a plausible bug. ``harness run --controls`` runs
the spec, then each control into ``OUT/controls/<name>/`` (an ordinary results folder:
resumable, identity-keyed), and judges every claim under every control. The falsification
table has one row per claim and one column per control:

- ``FAIL``: the claim fails under that control, so the control falsifies it;
- ``PASS``: the claim still holds for the broken variant;
- ``n/a``: the control's cells do not cover the claim's groups;
- ``ERR``: cells the claim needs failed under the control (no evidence either way).

A run with controls fails (exit 1) when a control's ``must_fail`` claim passed or errored,
or when some claim is falsified by no control.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .plan import RunPlan, make_plan
from .spec import Spec

CONTROLS_DIR = "controls"


def control_dir(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / CONTROLS_DIR / name


def plan_controls(plan: RunPlan, cache_dir: Path, force: bool = False,
                  **filters: Any) -> dict[str, RunPlan]:
    """One plan per control of the plan's spec, each in its own results folder
    (``filters``: ``make_plan``'s ``only``/``limit``, as the main run got them)."""
    plan.controls = {name: make_plan(spec, control_dir(plan.out_dir, name), cache_dir, force,
                                     **filters)
                     for name, spec in plan.spec.controls.items()}
    for cplan in plan.controls.values():  # cells a control leaves unchanged are not re-run
        cplan.adopt_from = plan.out_dir
    return plan.controls


def outcome(claim: dict[str, Any]) -> str:
    """A claim's result under a control: PASS, FAIL, n/a or ERR."""
    rows = claim.get("groups", [])
    if not rows or all("no group matches" in str(r.get("reason", "")) for r in rows):
        return "n/a"
    if any("missing" in str(r.get("reason", "")) for r in rows):
        return "ERR"
    if any("per_seed" in r and any(v.get("value") is None for v in r["per_seed"].values())
           for r in rows):
        return "ERR"
    return "PASS" if claim["passed"] else "FAIL"


def falsification(main: dict[str, Any], controls: list[dict[str, Any]],
                  summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The falsification table of a run: ``main`` is its summary, ``controls`` the spec's
    control entries (name, text, must_fail), ``summaries`` each control's summary."""
    ids = [c["id"] for c in main["claims"]]
    columns: list[dict[str, Any]] = []
    problems: list[str] = []
    for ctl in controls:
        summary = summaries.get(ctl["name"], {})
        results = {c["id"]: outcome(c) for c in summary.get("claims", [])}
        failed_cells = sum(1 for c in summary.get("cells", []) if c.get("status") != "ok")
        columns.append({"name": ctl["name"], "text": ctl.get("text", ""),
                        "must_fail": list(ctl["must_fail"]),
                        "out": f"{CONTROLS_DIR}/{ctl['name']}",
                        "cells": len(summary.get("cells", [])), "failed_cells": failed_cells,
                        "claims": {cid: results.get(cid, "n/a") for cid in ids}})
        for cid in ctl["must_fail"]:
            got = results.get(cid, "n/a")
            if got != "FAIL":
                problems.append(f"control {ctl['name']!r}: claim {cid!r} must fail but is {got}")
        if failed_cells:
            problems.append(f"control {ctl['name']!r}: {failed_cells} cell(s) failed "
                            f"(see {CONTROLS_DIR}/{ctl['name']})")
    verdicts: dict[str, dict[str, Any]] = {}
    for cid in ids:
        by = [col["name"] for col in columns if col["claims"][cid] == "FAIL"]
        verdicts[cid] = {"falsified_by": by,
                         "verdict": f"falsified by {', '.join(by)}" if by else "NOT FALSIFIED"}
        if not by:
            problems.append(f"claim {cid!r} is falsified by no control")
    return {"controls": columns, "verdicts": verdicts, "problems": problems,
            "ok": not problems}


def control_entries(plan: RunPlan) -> list[dict[str, Any]]:
    return [{"name": c.name, "text": c.text, "must_fail": list(c.must_fail)}
            for c in plan.spec.model.controls]


def unnamed_claims(spec: Spec) -> list[str]:
    """Claim ids that no control's ``must_fail`` names (``validate --strict`` fails on them)."""
    named = {cid for c in spec.model.controls for cid in c.must_fail}
    return [cid for cid in spec.claim_ids if cid not in named]
