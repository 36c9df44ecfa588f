"""How long each cell took when it last ran, so that a run hands out its longest cells first.

A pool of workers finishes a set of cells soonest when it starts the longest ones first
(then the short ones fill the gaps at the end, instead of one long cell running alone while
the other workers idle). A fresh run cannot know the durations, but the harness has seen
them: every run keeps each finished cell's wall time in the cache (``cell-durations.json``),
keyed by the hash of the cell's resolved configuration (what it computes, not the code
that computes it), and the next run of the same cells, into any results folder, starts
them longest first. Cells never seen run first, in the spec's order.

The order changes no record: every cell is seeded from its own identity, and what it may
read that another cell wrote (the language models' score memo) is exactly what it would
compute itself. The file is a hint: one that is missing, unreadable or written by a
concurrent run is ignored or overwritten, and no run fails over it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from .fingerprint import config_hash

FILE = "cell-durations.json"
MAX_ENTRIES = 20_000  # the oldest entries are dropped beyond this


def key(config: dict[str, Any]) -> str:
    """The cell's key in the file: the hash of its resolved configuration."""
    return config_hash(config)


def known(cache_dir: Path) -> dict[str, float]:
    """Seconds per cell key from earlier runs (empty when there is no usable file)."""
    try:
        data = json.loads((cache_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0}


def longest_first(cells: list[Any], seconds: dict[str, float]) -> list[Any]:
    """``cells`` (objects with a ``config``) reordered: never-seen cells first in their
    order, then the others by their last duration, longest first (ties keep their order)."""
    keyed = [(key(c.config), c) for c in cells]
    unseen = [c for k, c in keyed if k not in seconds]
    seen = [(k, c) for k, c in keyed if k in seconds]
    seen.sort(key=lambda kc: -seconds[kc[0]])
    return unseen + [c for _, c in seen]


def remember(cache_dir: Path, seconds: dict[str, float]) -> None:
    """Add these cells' durations to the file (a failure to write is ignored)."""
    if not seconds:
        return
    from .results import atomic_write_text
    merged = {k: v for k, v in known(cache_dir).items() if k not in seconds}
    merged.update(seconds)
    if len(merged) > MAX_ENTRIES:
        merged = dict(list(merged.items())[-MAX_ENTRIES:])
    with contextlib.suppress(OSError):
        atomic_write_text(cache_dir / FILE, json.dumps(merged, separators=(",", ":")))
