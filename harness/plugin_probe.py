"""A first import of each new plugin in a child process, bounded in time.

An import that raises (``SystemExit`` included) is caught in this process. An import
that calls ``os._exit`` or never returns cannot be: it would end or freeze every
command. So the first time an entry point of a distribution is seen (keyed by entry
point, distribution name, version and location), it is imported in a child process with
a time limit (``HARNESS_PLUGIN_IMPORT_TIMEOUT``, default 30 s; an import still using CPU
at the limit is slow, not hung, and gets up to 3x the limit); one that exits there
without finishing, dies or hangs is skipped with a warning naming it, and the verdict is
remembered in ``<cache>/plugin-probes.json`` until the distribution changes. Entry
points of the harness's own distribution are not probed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from .cachedir import default_cache

CACHE_NAME = "plugin-probes.json"
DEFAULT_TIMEOUT_S = 30.0

_PROBE = """
import json, sys
from importlib.metadata import EntryPoint
token, name, value = sys.argv[1:4]
sys.path[:] = json.loads(sys.stdin.readline())  # the host's import path
try:
    EntryPoint(name, value, "harness").load()
except BaseException:
    pass  # an ordinary failure: reported by the in-process import with its message
sys.stdout.write(token)
sys.stdout.flush()
"""


def _timeout() -> float:
    try:
        return max(0.5, float(os.environ.get("HARNESS_PLUGIN_IMPORT_TIMEOUT", DEFAULT_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def _key(ep: metadata.EntryPoint, package: str, version: str) -> str:
    dist = getattr(ep, "dist", None)
    where = ""
    with contextlib.suppress(Exception):
        where = str(dist.locate_file("")) if dist is not None else ""
    return f"{ep.name}={ep.value} {package}=={version} @{where}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        from .results import atomic_write_text
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(Exception):
        proc.wait(5)


def _cpu_ticks(pid: int) -> int | None:
    """CPU time used by ``pid`` so far (Linux /proc), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def probe(entries: list[tuple[metadata.EntryPoint, str, str]]) -> dict[str, str | None]:
    """Import each entry point in its own child process, all at once; per key, None when
    the import finished (or raised), else why it is unsafe."""
    limit = _timeout()
    token = secrets.token_hex(8)
    path_line = (json.dumps(sys.path) + "\n").encode()
    verdicts: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
        procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for i, (ep, package, version) in enumerate(entries):
            key = _key(ep, package, version)
            out = Path(tmp) / f"{i}.out"
            try:
                with open(out, "wb") as fh:  # a file, not a pipe: a chatty import cannot block
                    proc = subprocess.Popen(
                        [sys.executable, "-c", _PROBE, token, ep.name, ep.value],
                        stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.DEVNULL,
                        start_new_session=True)
            except OSError:  # cannot check it now: import it in process, check next time
                continue
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.write(path_line)
                proc.stdin.close()
            procs[key] = (proc, out)
        start = time.monotonic()
        while time.monotonic() < start + limit and any(
                p.poll() is None for p, _ in procs.values()):
            time.sleep(0.02)
        # past the limit, an import still using CPU is slow (a loaded machine), not hung:
        # it gets up to 3x the limit while it keeps making progress
        last = {k: _cpu_ticks(p.pid) for k, (p, _) in procs.items() if p.poll() is None}
        while last and time.monotonic() < start + 3 * limit:
            time.sleep(0.5)
            now = {k: _cpu_ticks(procs[k][0].pid) for k in last if procs[k][0].poll() is None}
            last = {k: t for k, t in now.items() if t is not None and t != last.get(k)}
        for key, (proc, out) in procs.items():
            if proc.poll() is None:
                _kill(proc)
                verdicts[key] = (f"did not finish importing within {limit:g} s (it hangs; "
                                 "HARNESS_PLUGIN_IMPORT_TIMEOUT raises the limit)")
            elif out.read_bytes().endswith(token.encode()):
                verdicts[key] = None
            elif proc.returncode < 0:
                verdicts[key] = f"killed its process on import (signal {-proc.returncode})"
            else:
                verdicts[key] = (f"ended its process on import (os._exit({proc.returncode}) "
                                 "or a crash)")
    return verdicts


def unsafe_entry_points(entries: list[tuple[metadata.EntryPoint, str, str]]) -> dict[str, str]:
    """Entry point name -> why importing it in this process is unsafe, for those
    (checked once per distribution version; see the module docstring)."""
    if not entries:
        return {}
    path = default_cache() / CACHE_NAME
    cache = _read(path)
    keys = {ep.name: _key(ep, package, version) for ep, package, version in entries}
    limit = _timeout()

    def known(key: str) -> bool:  # a hang verdict under a shorter limit is checked again
        entry = cache.get(key)
        return isinstance(entry, dict) and not (
            entry.get("hang") and float(entry.get("limit", 0)) < limit)

    new = [e for e in entries if not known(keys[e[0].name])]
    if new:
        verdicts = probe(new)
        cache.update({k: {"unsafe": v, "hang": bool(v and "within" in v), "limit": limit}
                      for k, v in verdicts.items()})
        cache = {k: v for k, v in cache.items() if Path(k.rsplit(" @", 1)[-1]).exists()}
        _write(path, cache)
    out = {}
    for name, key in keys.items():
        reason = (cache.get(key) or {}).get("unsafe") if isinstance(cache.get(key), dict) else None
        if reason:
            out[name] = f"{reason}; it is skipped until its version changes"
    return out
