"""Shared fixtures: run the `harness` command, locate ../shared, build specs in tmp."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SHARED = ROOT.parent / "shared"
BIGBENCH = SHARED / "bigbench"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread in every test, as the specs' settings use: in-process tests train
    small models, and pytest-xdist already runs one worker per core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:
        return f"<exit {self.returncode}>\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_harness(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                timeout: float = 600) -> Result:
    """Run ``python -m harness ARGS`` in a subprocess (the real CLI, exit code and all)."""
    full_env = {**os.environ, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, env=full_env, timeout=timeout)
    return Result(proc)


@pytest.fixture
def harness_cli():
    return run_harness


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write YAML text to a file in tmp_path and return its path."""
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


def default_sigint() -> None:
    """``preexec_fn`` for a child a test interrupts with SIGINT: a shell starts background
    commands with SIGINT ignored, and a child inherits that (Python then installs no
    KeyboardInterrupt handler), so reset it to the default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def load_summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


@pytest.fixture
def bigbench_dir() -> Path:
    if not BIGBENCH.is_dir():
        pytest.skip(f"real BIG-bench data not found at {BIGBENCH} (../shared is absent)")
    return BIGBENCH


def add_test_adapters(registry: Any, *classes: type) -> None:
    """Register test-only adapter classes in ``registry`` as a plugin named after them
    (skipping those already there)."""
    from harness import hookimpl
    missing = [c for c in classes if c.__dict__.get("name") not in registry.adapters]
    if not missing:
        return

    class TestPlugin:
        @hookimpl
        def harness_adapters(self) -> list[type]:
            return missing

    registry.register(TestPlugin(), "test-" + "-".join(c.name for c in missing), "tests", "0")
