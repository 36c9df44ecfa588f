"""An exact memo of log-likelihood calls, shared by the cells of a run and across runs.

Benchmarks score the same requests more than once: BIG-bench's 3-shot cell re-scores
the 0-shot prompts that the 0-shot cell already scored (``baseline_shots``), and every
seed of a cross-lingual ICL run scores the same 0-shot prompts (only the demonstrations
depend on the seed). :class:`ScoreMemo` keeps the result of each
:meth:`~.causal.CausalLM.loglikelihood` call on disk (``<cache>/lm-scores/``), keyed by
everything the result depends on:

- the weights: the model folder's path and the sizes and modification times of its
  files (:func:`harness.datacache.path_stamp`); a hub id, whose files this process does
  not own, gets no memo;
- dtype, device, torch's and transformers' versions and torch's thread count;
- the scorer: strategy (``packed``/``padded``/``naive``), ``batch_tokens``,
  ``batch_size``, ``max_length``;
- the call's requests: every context's and continuation's token ids, in order.

The same call on the same inputs runs the same forwards in the same order, so a hit
returns the very floats the computation would (the memo stores them as JSON, which
round-trips a float exactly). It is never used once a caller has touched the torch
module (:attr:`~.causal.CausalLM.module`: a method that may change the weights), and
``HARNESS_NO_LM_MEMO=1`` turns it off. Each hit is counted in the model's ``stats``
(``memo_hits``), which the methods record with the model's description.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.results import atomic_write_text

from .packing import Request

ENV_OFF = "HARNESS_NO_LM_MEMO"
FOLDER = "lm-scores"


def enabled() -> bool:
    return os.environ.get(ENV_OFF, "") in ("", "0")


def weights_identity(folder: str | Path) -> dict[str, str] | None:
    """The identity of the weights in a local model folder; None when there is none."""
    from harness.datacache import path_stamp
    path = Path(folder)
    if not path.is_dir():
        return None
    return {"folder": str(path.resolve()), "stamp": path_stamp(path)}


class ScoreMemo:
    """Log-likelihood results on disk under ``root``, for one model's ``identity``."""

    def __init__(self, root: Path, identity: dict[str, Any]) -> None:
        self.root = Path(root) / FOLDER
        self.identity = identity

    def key(self, reqs: Sequence[Request], scorer: dict[str, Any]) -> str:
        h = hashlib.sha256(json.dumps({"model": self.identity, "scorer": scorer},
                                      sort_keys=True, default=str).encode())
        for r in reqs:
            h.update(b"C" + ",".join(map(str, r.context)).encode())
            for cont in r.continuations:
                h.update(b"T" + ",".join(map(str, cont)).encode())
        return h.hexdigest()[:32]

    def get(self, key: str, shape: list[int]) -> list[list[float]] | None:
        """The stored result of ``key`` if it reads back with ``shape`` (continuations
        per request), else None (absent, unreadable or of another shape: compute)."""
        try:
            value = json.loads((self.root / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(value, list) or [len(v) if isinstance(v, list) else -1
                                           for v in value] != shape:
            return None
        if not all(isinstance(x, float) for v in value for x in v):
            return None
        return value

    def put(self, key: str, value: list[list[float]]) -> None:
        """Store a result (best effort: a read-only cache only costs the re-computation)."""
        try:
            atomic_write_text(self.root / f"{key}.json", json.dumps(value))
        except OSError:
            pass
