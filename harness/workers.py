"""Worker processes for cells: per-cell timeouts, dead workers replaced, no orphans.

Each worker is a spawned process with a pipe to the parent; it executes one cell at a
time and sends back its progress steps and its record. The parent:

- stops a cell that runs longer than its ``timeout_s`` (SIGKILL of its worker), records
  it as failed with ``timed out after N s`` and starts a fresh worker;
- records a cell whose worker died (a segfault, ``os._exit`` in an adapter, the OOM
  killer) as failed with the exit status, and starts a fresh worker;
- on Ctrl-C or any error, kills its workers before returning.

A pool made with ``keep=True`` keeps its idle workers between ``run`` calls (until
``close``): a run's controls then reuse the workers of the main run, with their imports
done and their datasets loaded (a spawned worker costs seconds of CPU before its first
cell). Each cell is sent with its results folder, so a kept worker serves any folder.

``prestart(jobs)`` spawns a pool's workers before it exists (the CLI calls it before it
loads the spec): their seconds of imports then overlap the parent's own (the spec's
adapter modules, the plan). A pool takes such a spare only if it was started with the
same thread cap, import path and environment; ``discard_spares`` stops the rest.

A worker told to stop leaves with :func:`harness.quickexit.quick_exit`: the interpreter's
teardown of torch's modules takes about a second per worker, and every record it wrote is
already on disk.

Workers die with their parent: on Linux the kernel sends them SIGKILL when the parent
dies (``PR_SET_PDEATHSIG``), and on every platform a watch thread polls the parent pid.
Workers ignore SIGINT: a Ctrl-C on the terminal reaches the whole process group, and only
the parent decides to stop (an adapter raising ``KeyboardInterrupt`` is a failed cell).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from .plan import CellPlan
from .quickexit import quick_exit

PARENT_POLL_S = 0.5
STEP_EVERY_S = 0.2


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` is gone (call it first in a worker)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes
            import ctypes.util
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()


def _warm_up() -> None:
    """Pay the worker's one-time import costs before any cell's clock starts: setting
    torch's determinism flags imports ``torch._inductor`` and ``torch._dynamo`` (seconds
    on a loaded machine), which torch.optim's first step would import anyway."""
    import torch
    with contextlib.suppress(Exception):
        torch.use_deterministic_algorithms(
            torch.are_deterministic_algorithms_enabled(),
            warn_only=torch.is_deterministic_algorithms_warn_only_enabled())


#: the native thread pools (OpenMP, OpenBLAS, MKL...) a worker caps at its share of the
#: cores, unless the user set them: torch's own threads are the cell's ``threads``
#: setting, but numpy's and scipy's BLAS would start a thread per core in every worker
#: (``jobs`` workers on N cores, N threads each, spin-waiting for each other: the same
#: metric took 64 s of CPU instead of 1-2 s in two rxrx1 workers)
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def share_of_cores(jobs: int) -> int:
    """Native threads per worker: the machine's cores divided among ``jobs`` workers."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def cap_native_threads(threads: int) -> None:
    """Cap the native thread pools of libraries imported from now on (``THREAD_ENV``),
    except those the user set."""
    for name in THREAD_ENV:
        os.environ.setdefault(name, str(threads))


def _worker_main(conn: Connection, parent_pid: int, out_dir: str,
                 native_threads: int | None = None) -> None:
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if native_threads is not None:  # before numpy or torch is imported in this process
        cap_native_threads(native_threads)
    from .runner import execute_cell
    _warm_up()
    while True:
        try:
            plan = conn.recv()
        except (EOFError, OSError):
            quick_exit(0)
        if plan is None:
            quick_exit(0)
        conn.send(("start", plan.name))  # the cell's clock starts now, not at the spawn
        def step(label: str, done: int, total: int | None, _name: str = plan.name,
                 _last: list[float] = [0.0]) -> None:  # noqa: B006 (the last send time)
            now = time.monotonic()
            if now - _last[0] >= STEP_EVERY_S or (total is not None and done >= total):
                _last[0] = now
                conn.send(("step", _name, label, done, total))

        record = execute_cell(plan, out_dir, step)
        conn.send(("done", record))


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    plan: CellPlan | None = None
    sent: float = 0.0
    started: float | None = None  # when the worker began the cell (after its start-up)

    @property
    def deadline(self) -> float | None:
        if self.plan is None or self.plan.timeout_s is None or self.started is None:
            return None
        return self.started + float(self.plan.timeout_s)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "its worker process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"its worker process was killed by {name}"
    return f"its worker process exited with status {code} (os._exit or a crash in native code)"


def _spawn(ctx: Any, out_dir: str, native_threads: int) -> _Worker:
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker_main,
                       args=(child, os.getpid(), out_dir, native_threads),
                       name="harness-worker", daemon=True)
    proc.start()
    child.close()
    return _Worker(proc, parent)


def _spawn_key(native_threads: int) -> tuple[Any, ...]:
    """What a spawned worker inherits and keeps: its thread cap, import path, environment."""
    return native_threads, tuple(sys.path), tuple(sorted(os.environ.items()))


#: workers started by ``prestart``, each with the ``_spawn_key`` it was started under
_SPARES: list[tuple[tuple[Any, ...], _Worker]] = []


def prestart(jobs: int) -> None:
    """Start the workers of a ``jobs``-worker pool now, for the next pool to take."""
    discard_spares()
    threads = share_of_cores(jobs)
    ctx = multiprocessing.get_context("spawn")
    _SPARES.extend((_spawn_key(threads), _spawn(ctx, "", threads)) for _ in range(max(1, jobs)))


def _take_spare(native_threads: int) -> _Worker | None:
    key = _spawn_key(native_threads)
    for i, (spare_key, worker) in enumerate(_SPARES):
        if spare_key == key and worker.proc.is_alive():
            del _SPARES[i]
            return worker
    return None


def discard_spares() -> None:
    """Stop the workers ``prestart`` started that no pool took."""
    spares = [w for _, w in _SPARES]
    _SPARES.clear()
    WorkerPool._finish(spares)


class WorkerPool:
    """Run cell plans in ``jobs`` spawned worker processes; see the module docstring."""

    def __init__(self, jobs: int, keep: bool = False) -> None:
        self.jobs = max(1, jobs)
        self.ctx = multiprocessing.get_context("spawn")
        self.keep = keep
        self.idle: list[_Worker] = []  # kept between runs (keep=True)

    def close(self) -> None:
        """Stop the workers kept between runs."""
        idle, self.idle = self.idle, []
        self._finish(idle)

    @staticmethod
    def _finish(workers: list[_Worker]) -> None:
        for w in workers:
            with contextlib.suppress(Exception):
                w.conn.send(None)
        for w in workers:
            if w.plan is not None:
                WorkerPool._stop(w)
            else:
                w.proc.join(2)
                if w.proc.is_alive():
                    WorkerPool._stop(w)

    def _start(self, out_dir: str) -> _Worker:
        threads = share_of_cores(self.jobs)
        return _take_spare(threads) or _spawn(self.ctx, out_dir, threads)

    @staticmethod
    def _stop(worker: _Worker) -> None:
        with contextlib.suppress(Exception):
            worker.proc.kill()
        worker.proc.join(5)
        with contextlib.suppress(Exception):
            worker.conn.close()

    def run(self, plans: list[CellPlan], out_dir: str, on_done: Any, on_step: Any) -> None:
        from .runner import write_failed_record
        queue = deque(plans)
        for plan in plans:
            plan.out_root = plan.out_root or out_dir  # a kept worker may serve another folder
            on_step(plan.name, "queued", 0, None)
        workers = [w for w in self.idle if w.proc.is_alive()]
        self._finish([w for w in self.idle if w not in workers])
        self.idle = []
        try:
            while queue or any(w.plan is not None for w in workers):
                while queue and len(workers) < min(self.jobs, len(queue) + sum(
                        w.plan is not None for w in workers)):
                    workers.append(self._start(out_dir))
                for w in workers:
                    if w.plan is None and queue:
                        plan = queue.popleft()
                        try:
                            w.conn.send(plan)
                        except OSError:  # it died while idle: start another one
                            queue.appendleft(plan)
                            self._stop(w)
                            workers.remove(w)
                            break
                        w.plan, w.sent, w.started = plan, time.monotonic(), None
                busy = [w for w in workers if w.plan is not None]
                deadlines = [d for d in (w.deadline for w in busy) if d is not None]
                left = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                             timeout=left)
                for w in busy:
                    if w.plan is None:
                        continue
                    plan = w.plan
                    ended: str | None = None
                    if w.conn in ready:
                        try:
                            while w.conn.poll():
                                msg = w.conn.recv()
                                if msg[0] == "start":
                                    w.started = time.monotonic()
                                    on_step(plan.name, "start", 0, None)
                                elif msg[0] == "step":
                                    on_step(*msg[1:])
                                else:
                                    w.plan = None
                                    on_done(plan, msg[1])
                                    break
                        except (EOFError, OSError):
                            w.proc.join(1)
                            ended = _describe_exit(w.proc.exitcode)
                    elif w.proc.sentinel in ready:
                        w.proc.join(1)
                        ended = _describe_exit(w.proc.exitcode)
                    elif w.deadline is not None and time.monotonic() >= w.deadline:
                        ended = f"timed out after {plan.timeout_s:g} s"
                    if ended is not None:
                        took = time.monotonic() - (w.started or w.sent)
                        self._stop(w)
                        workers.remove(w)
                        on_done(plan, write_failed_record(plan, out_dir, ended, took))
        finally:
            if self.keep and not any(w.plan is not None for w in workers):
                self.idle = workers  # a clean end: keep them for the next run
            else:
                self._finish(workers)
