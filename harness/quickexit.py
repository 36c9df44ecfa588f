"""Leave a process that imported torch without the interpreter's teardown.

Freeing torch's modules at exit takes about half a second in the CLI and about a second in
a worker that ran cells, on every run. ``quick_exit`` does what a normal exit does that
matters here (the ``atexit`` handlers: multiprocessing's, logging's, ``weakref.finalize``
callbacks such as temporary folders; the standard streams flushed) and then leaves with
``os._exit``. Where a non-daemon thread is still running, a normal exit would wait for it,
so ``quick_exit`` does too (a plain ``sys.exit``). So it does under a profiler, tracer or
debugger (``python -m cProfile``/``pyinstrument``/``trace`` write their report after the
program returns, which ``os._exit`` would skip).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def quick_exit(code: int = 0) -> NoReturn:
    """Exit with ``code`` after the atexit handlers, skipping the module teardown."""
    main = threading.main_thread()
    if _observed() or any(t is not main and not t.daemon and t.is_alive()
                          for t in threading.enumerate()):
        sys.exit(code)
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _observed() -> bool:
    """A profiler, tracer or debugger is attached (it may report after the program)."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python >= 3.12 (PEP 669 tools)
    if monitoring is None:
        return False
    return any(monitoring.get_tool(tool) is not None for tool in range(6))
