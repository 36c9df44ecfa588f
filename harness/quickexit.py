"""Leave a process that imported torch without the interpreter's teardown.

Freeing torch's modules at exit takes about half a second in the CLI and about a second in
a worker that ran cells, on every run. ``quick_exit`` does what a normal exit does that
matters here (the ``atexit`` handlers: multiprocessing's, logging's, ``weakref.finalize``
callbacks such as temporary folders; the standard streams flushed) and then leaves with
``os._exit``. Where a non-daemon thread is still running, a normal exit would wait for it,
so ``quick_exit`` does too (a plain ``sys.exit``).
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
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
