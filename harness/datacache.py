"""Load dataset components once per process: a cache keyed by (config hash, seed).

Every cell on the same dataset and spec seed shares one loaded object, in this process
or in each worker process of an executor. The plan uses the same cache to fingerprint
the data that each cell's identity hashes.

Fingerprints are also kept on disk (``<cache>/fingerprints/``), keyed by the dataset's
canonical config, seed and adapter versions (and numpy's and torch's), so that planning a
run whose cells are all recorded loads no data at all. A dataset adapter whose data
depends on anything else (files, folders, installed data packages) sets
``fingerprint_cacheable = False`` and is always loaded to be fingerprinted. Every cell
that runs fingerprints the data it actually loaded: a stale entry (a ``load()`` changed
without a version bump) is corrected there, and ``--force`` bypasses the disk cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fingerprint import SCHEME_VERSION, config_hash, fingerprint
from .results import atomic_write_text

if TYPE_CHECKING:
    from .adapter import Component
    from .context import RunContext

_CACHE: dict[tuple[str, int], tuple[Any, str]] = {}


def load_with_fingerprint(component: Component, seed: int, like: RunContext) -> tuple[Any, str]:
    """``(data, fingerprint)`` of a dataset component loaded with ``seed``; ``like`` gives
    the device, folders and progress of the context the loader receives."""
    key = (config_hash(component.config()), seed)
    if key not in _CACHE:
        ctx = like.for_data(seed, f"data:{component.label}")
        ctx.seed_globals()
        data = component.build().load(ctx)
        _CACHE[key] = (data, fingerprint(data))
    return _CACHE[key]


def load_component_data(component: Component, seed: int, like: RunContext) -> Any:
    """Load a dataset component with ``seed``, once per process per (config, seed)."""
    return load_with_fingerprint(component, seed, like)[0]


def clear() -> None:
    """Forget every loaded dataset (tests; a long-lived process that reloads plugins)."""
    _CACHE.clear()


FINGERPRINTS_DIR = "fingerprints"


def _all_cacheable(component: Component) -> bool:
    from .adapter import iter_components
    if not getattr(component.adapter, "fingerprint_cacheable", True):
        return False
    return all(_all_cacheable(child) for child in iter_components(component.params))


def fingerprint_key(component: Component, seed: int) -> str | None:
    """The disk-cache key of a dataset's fingerprint, or None when it must be loaded."""
    if not _all_cacheable(component):
        return None
    import numpy
    import torch
    return config_hash({"scheme": SCHEME_VERSION, "config": component.config(), "seed": seed,
                        "versions": component.versions(), "numpy": numpy.__version__,
                        "torch": torch.__version__})


def _entry(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / FINGERPRINTS_DIR / f"{key}.json"


def fingerprint_path(component: Component, seed: int, cache_dir: Path) -> Path | None:
    """The file that records this dataset's fingerprint, or None when it is never cached."""
    key = fingerprint_key(component, seed)
    return None if key is None else _entry(cache_dir, key)


def cached_fingerprint(component: Component, seed: int, cache_dir: Path) -> str | None:
    """The fingerprint recorded on disk for this dataset and seed, if any."""
    key = fingerprint_key(component, seed)
    if key is None:
        return None
    try:
        entry = json.loads(_entry(cache_dir, key).read_text())
        value = entry["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: load and fingerprint instead
    return value if isinstance(value, str) and value else None


def store_fingerprint(component: Component, seed: int, cache_dir: Path, value: str) -> None:
    """Remember a dataset's fingerprint on disk (best effort: a read-only cache is fine)."""
    key = fingerprint_key(component, seed)
    if key is None:
        return
    entry = {"fingerprint": value, "dataset": component.use, "seed": seed}
    try:
        atomic_write_text(_entry(cache_dir, key), json.dumps(entry))
    except OSError:
        pass
