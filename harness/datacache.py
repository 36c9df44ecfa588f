"""Load dataset components once per process: a cache keyed by (config hash, seed).

Every cell on the same dataset and spec seed shares one loaded object, in this process
or in each worker process of an executor. The plan uses the same cache to fingerprint
the data that each cell's identity hashes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .fingerprint import config_hash, fingerprint

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
