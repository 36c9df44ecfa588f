"""`fault/cell`: a method whose run() exits, raises BaseExceptions, hangs or kills its
process, or leaves an atexit handler that writes `mark`, chosen by `mode`; `fault/value`
reads its output."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from typing import Any, Literal

from pydantic import Field

import harness
from harness import CellResult, Method, Metric, Params, RunContext


class FaultError(BaseException):
    """Neither an Exception nor a KeyboardInterrupt."""


class Cell(Method):
    """Returns `value` after `seconds`, or misbehaves as `mode` says."""

    name = "fault/cell"

    class Params(Params):
        mode: Literal["ok", "sys_exit", "keyboard", "base", "hang", "os_exit",
                      "segv", "atexit"] = "ok"
        value: float = 1.0
        mark: str = ""
        seconds: float = Field(0.0, ge=0)

    def run(self, ctx: RunContext, data: Any, model: Any) -> dict[str, Any]:
        p = self.params
        if p.seconds:
            time.sleep(p.seconds)
        if p.mode == "sys_exit":
            sys.exit(0)
        if p.mode == "keyboard":
            raise KeyboardInterrupt
        if p.mode == "base":
            raise FaultError("not an Exception")
        if p.mode == "hang":
            while True:
                time.sleep(0.05)
        if p.mode == "os_exit":
            os._exit(0)
        if p.mode == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if p.mode == "atexit":
            atexit.register(lambda: open(p.mark, "w").write(str(os.getpid())))
        return {"value": p.value}


class Value(Metric):
    """The method's `value`."""

    name = "fault/value"

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        return {"value": float(result.outputs["value"])}


@harness.hookimpl
def harness_adapters() -> list[type[harness.Adapter]]:
    return [Cell, Value]
