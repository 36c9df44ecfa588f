"""Where a result came from: package versions, git state, platform, threads, flags."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("harness-bench", "torch", "numpy", "scipy", "scikit-learn", "pydantic", "pluggy",
            "datasets", "evaluate", "transformers", "gymnasium")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


# git reads a repository's own config, and `git status` runs its `core.fsmonitor` command
# (and some configs run hooks or filters): a spec's folder is not trusted to run code, so
# git is called with those off and the system/global config ignored.
SAFE_GIT = ("-c", "core.fsmonitor=", "-c", "core.hooksPath=/dev/null", "-c",
            "core.untrackedCache=false", "-c", "diff.external=", "-c", "core.pager=cat",
            "-c", "status.showUntrackedFiles=no", "-c", "core.sshCommand=false",
            "-c", "protocol.allow=never")


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0",
               GIT_OPTIONAL_LOCKS="0", GIT_NO_REPLACE_OBJECTS="1", GIT_PAGER="cat")
    return env


@lru_cache(maxsize=8)
def git_state(where: str) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *SAFE_GIT, *args], cwd=where, capture_output=True,
                                 text=True, timeout=10, env=_git_env(),
                                 stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    local = git("config", "--local", "--includes", "--name-only", "--list") or ""
    risky = sorted({k for k in local.lower().splitlines()
                    if k.startswith(("filter.", "core.fsmonitor", "core.hookspath"))})
    if any(k.startswith("filter.") for k in risky):
        # `git status` would run the repository's clean filters: not checked
        return {"commit": commit, "dirty": None,
                "dirty_unchecked": "the repository's config defines filter drivers"}
    status = git("status", "--porcelain", "--untracked-files=no", "--ignore-submodules",
                 "--no-renames")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def apply_determinism(threads: int, deterministic: bool) -> dict[str, Any]:
    """Set torch's thread count and determinism flags; return what was set."""
    torch.set_num_threads(threads)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return determinism_flags()


def determinism_flags() -> dict[str, Any]:
    return {
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def provenance(spec_source: str) -> dict[str, Any]:
    where = str(Path(spec_source).resolve().parent) if spec_source else os.getcwd()
    return {
        "packages": package_versions(),
        "git": git_state(where),
        "platform": {"system": platform.system(), "release": platform.release(),
                     "machine": platform.machine(), "python": sys.version.split()[0],
                     "cpu_count": os.cpu_count()},
        "determinism": determinism_flags(),
        "argv": sys.argv,
    }
