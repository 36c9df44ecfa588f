"""The results folder a run writes to: checked before the first cell, and file-system
errors (a full disk, a read-only folder) turned into clear messages instead of tracebacks.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import HarnessError

# errors the user fixes by pointing --out elsewhere or changing permissions: exit 2
USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST,
               errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}
FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def check_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and make sure a file can be written in it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise HarnessError(f"--out {out_dir}: this is a file, not a folder",
                           hint="give a folder (new or a previous run's results)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise HarnessError(f"--out {out_dir}: cannot write there: {exc.strerror or exc}",
                           hint="choose a folder you can write to") from None


def os_error_message(exc: OSError) -> tuple[str, str, int]:
    """(message, hint, exit code) for a file-system error outside any cell."""
    where = f" ({exc.filename})" if exc.filename else ""
    text = f"cannot write{where}: {exc.strerror or exc}"
    if exc.errno in FULL_ERRNOS:
        return (text, "free some space (or point --out elsewhere) and run again: finished "
                "cells are kept and resume", 1)
    if exc.errno in USER_ERRNOS:
        return text, "check the results folder (--out) and its permissions", 2
    return text, "finished cells are kept; run again to resume", 1


def storage_error(exc: BaseException) -> tuple[str, str, int] | None:
    """(message, hint, exit code) for a file-system or SQLite storage error, else None."""
    if isinstance(exc, OSError):
        return os_error_message(exc)
    if type(exc).__module__ == "sqlite3" and isinstance(exc, Exception):
        full = "full" in str(exc).lower()
        return (f"cannot write the results index: {exc}",
                "free some space and run again: finished cells are kept and resume" if full
                else "finished cells are kept; run again to resume (the index is rebuilt)", 1)
    return None
