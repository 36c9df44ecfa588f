"""Helpers for the fault-injection tests: install a test plugin, call the CLI in-process."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from harness.registry import get_registry

PLUGINS = ROOT / "tests" / "plugins"


def install_plugin(name: str, target: Path) -> Path:
    """A real pip install of the test plugin package ``name`` into ``target``."""
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
            str(target), str(PLUGINS / name)]
    if importlib.util.find_spec("setuptools") is not None:
        args.insert(4, "--no-build-isolation")
    subprocess.run(args, check=True, capture_output=True, timeout=300)
    return target


def cli(*args: str) -> int:
    """``harness ARGS`` in this process (its plugins already imported: cheap); returns
    the exit code, output goes to capsys."""
    from harness.cli import main
    fmt = warnings.formatwarning
    try:
        with warnings.catch_warnings():
            return main(list(args))
    finally:
        warnings.formatwarning = fmt  # type: ignore[assignment]


@pytest.fixture(scope="module")
def faults_site(tmp_path_factory) -> Iterator[Path]:
    """The `fault/cell` plugin installed and on sys.path, the registry refreshed."""
    root = tmp_path_factory.mktemp("cellfaults")
    site = install_plugin("harness-cellfaults", root / "site")
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_CACHE", str(root / "cache"))
    mp.syspath_prepend(str(site))
    importlib.invalidate_caches()
    get_registry(refresh=True)
    yield site
    mp.undo()
    importlib.invalidate_caches()
    get_registry(refresh=True)
