"""The harness's cache folder: ``$HARNESS_CACHE``, else ``$XDG_CACHE_HOME/harness``, else
``~/.cache/harness`` (models converted once, data fingerprints, plans, the plugin
manifest, the language models' memo, cell durations)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache() -> Path:
    """This process's cache folder, from its environment."""
    env = os.environ.get("HARNESS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness"
