"""Load dataset components once per process: a cache keyed by (config hash, seed).

Every cell on the same dataset and spec seed shares one loaded object, in this process
or in each worker process of an executor. The plan uses the same cache to fingerprint
the data that each cell's identity hashes.

Fingerprints are also kept on disk (``<cache>/fingerprints/``), keyed by the dataset's
canonical config, seed and adapter versions (and numpy's and torch's), so that planning a
run whose cells are all recorded loads no data at all. A dataset adapter whose data
depends on anything else (files, folders, installed data packages) sets
``fingerprint_cacheable = False``; it is loaded to be fingerprinted unless it names the
files and folders it reads (:meth:`harness.Dataset.inputs`), whose sizes and modification
times (:func:`path_stamp`) then join the key, as make and git's index judge a file. Every cell
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


def path_stamp(path: str | Path) -> str:
    """A short hash of a file's size and modification time, or of every file's relative
    path, size and modification time under a folder; ``"absent"`` when nothing is there."""
    import hashlib
    import os
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return "absent"
    if not p.is_dir():
        return f"f{st.st_size}:{st.st_mtime_ns}"
    h = hashlib.sha256()
    for base, dirs, files in os.walk(p):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(base, name)
            try:
                fst = os.stat(full)
            except OSError:
                continue
            h.update(f"{os.path.relpath(full, p)}\0{fst.st_size}\0{fst.st_mtime_ns}\n".encode())
    return "d" + h.hexdigest()[:24]


def _input_stamps(component: Component, cache_dir: Path) -> list[list[str]] | None:
    """``[[path, stamp], ...]`` of the files every file-reading component in ``component``
    reads (its children included); None when one of them cannot name its files."""
    from .adapter import iter_components
    stamps: list[list[str]] = []
    if not getattr(component.adapter, "fingerprint_cacheable", True):
        try:
            paths = component.build().inputs(Path(cache_dir))
        except Exception:  # the loader will report what is wrong
            return None
        if paths is None:
            return None
        stamps += [[str(Path(p).expanduser().resolve()), path_stamp(p)] for p in paths]
    for child in iter_components(component.params):
        more = _input_stamps(child, cache_dir)
        if more is None:
            return None
        stamps += more
    return stamps


def _key_and_inputs(component: Component, seed: int,
                    cache_dir: Path) -> tuple[str, list[list[str]]] | None:
    inputs = _input_stamps(component, cache_dir)
    if inputs is None:
        return None
    import numpy
    import torch
    key = config_hash({"scheme": SCHEME_VERSION, "config": component.config(), "seed": seed,
                       "versions": component.versions(), "numpy": numpy.__version__,
                       "torch": torch.__version__, **({"inputs": inputs} if inputs else {})})
    return key, inputs


def fingerprint_key(component: Component, seed: int, cache_dir: Path) -> str | None:
    """The disk-cache key of a dataset's fingerprint, or None when it must be loaded."""
    found = _key_and_inputs(component, seed, cache_dir)
    return None if found is None else found[0]


def _entry(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / FINGERPRINTS_DIR / f"{key}.json"


def fingerprint_path(component: Component, seed: int, cache_dir: Path) -> Path | None:
    """The file that records this dataset's fingerprint, or None when it is never cached."""
    key = fingerprint_key(component, seed, cache_dir)
    return None if key is None else _entry(cache_dir, key)


def cached_fingerprint(component: Component, seed: int, cache_dir: Path) -> str | None:
    """The fingerprint recorded on disk for this dataset and seed, if any."""
    key = fingerprint_key(component, seed, cache_dir)
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
    found = _key_and_inputs(component, seed, cache_dir)
    if found is None:
        return
    key, inputs = found
    entry = {"fingerprint": value, "dataset": component.use, "seed": seed, "inputs": inputs}
    try:
        atomic_write_text(_entry(cache_dir, key), json.dumps(entry))
    except OSError:
        pass
