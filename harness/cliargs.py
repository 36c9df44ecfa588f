"""Command-line values checked before any command runs (no heavy imports here)."""

from __future__ import annotations

from typing import Any

from .errors import HarnessError, Location


def check_cli_args(args: Any) -> None:
    """Command-line values no run can use: ``--jobs 0``, negative or repeated seeds, an
    empty ``--seeds``, a non-positive ``--timeout`` (raises :class:`HarnessError`)."""
    jobs = getattr(args, "jobs", None)
    if jobs is not None and jobs < 1:
        raise HarnessError(f"--jobs must be at least 1, got {jobs}", location=Location("--jobs"),
                           hint="--jobs 1 runs cells one at a time; --jobs N runs N at once")
    timeout = getattr(args, "timeout", None)
    if isinstance(timeout, (int, float)) and not timeout > 0:
        raise HarnessError(f"--timeout must be a positive number of seconds, got {timeout}",
                           location=Location("--timeout"), hint="e.g. --timeout 600")
    seeds = getattr(args, "seeds", None)
    if seeds is None:
        return
    parts = [s.strip() for s in str(seeds).split(",")]
    hint = "e.g. --seeds 0,1,2 (non-negative integers, each once)"
    if not any(parts):
        raise HarnessError("--seeds is empty", location=Location("--seeds"), hint=hint)
    values: list[int] = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            raise HarnessError(f"--seeds takes comma-separated integers, got {part!r}",
                               location=Location("--seeds"), hint=hint) from None
        if value < 0:
            raise HarnessError(f"--seeds: a seed is a non-negative integer, got {value}",
                               location=Location("--seeds"), hint=hint)
        if value in values:
            raise HarnessError(f"--seeds: seed {value} is given twice",
                               location=Location("--seeds"), hint=hint)
        values.append(value)
