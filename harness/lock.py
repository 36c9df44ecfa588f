"""One writer per results folder: an ``fcntl`` lock on ``DIR/.harness.lock``.

``harness run`` (and anything else that writes records) holds the lock for the whole
command; a second writer on the same folder exits 2 naming the holder's pid, or waits for
it with ``--wait``. Readers (show, report, query, verify's comparison) take no lock. The
lock is released by the kernel when its holder dies, so a SIGKILLed run never leaves a
stale lock behind; the pid in the file is only informative. The lock is re-entrant within
one process (``run --controls`` locks the folder once, its control runs lock subfolders).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import ResultsError

LOCK_NAME = ".harness.lock"

_held: dict[str, int] = {}  # resolved lock path -> nesting depth in this process
_guard = threading.Lock()


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return "another process"
    pid = text.split()[0] if text else ""
    return f"pid {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def locked(out_dir: Path, *, wait: bool = False, what: str = "harness run") -> Iterator[None]:
    """Hold the results folder's lock (created with the folder when needed)."""
    import fcntl  # POSIX only, like the pool executor's worker handling

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create the results folder {out_dir}: {exc.strerror}",
                           hint="choose another --out") from None
    path = out_dir / LOCK_NAME
    key = str(path.resolve())
    with _guard:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise ResultsError(f"cannot open the lock file {path}: {exc.strerror}",
                           hint="check the folder's permissions, or choose another --out"
                           ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ResultsError(
                f"{out_dir} is in use: {what} ({_holder(path)}) is writing to this results "
                "folder", hint="wait for it to finish, pass --wait to queue behind it, or "
                "choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what}\n".encode())
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
