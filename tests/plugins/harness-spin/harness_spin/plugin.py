"""Adapters whose cells do deterministic CPU work and leave files behind, so the
distributed tests can check numbers, artifacts (npz, PNG) and examples end to end."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch
from pydantic import Field

import harness
from harness import CellResult, Dataset, Method, Metric, Params, RunContext


class Vector(Dataset):
    """A random start vector drawn from the run context."""

    name = "spin/vector"

    class Params(Params):
        dim: int = Field(64, ge=1)

    def load(self, ctx: RunContext) -> torch.Tensor:
        return torch.randn(self.params.dim, generator=ctx.generator, dtype=torch.float64)


class Burn(Method):
    """Iterate x <- tanh(W x) with a random W; writes started.txt (the pid) first, then
    state.npz and trace.png; one example per 10 steps."""

    name = "spin/burn"

    class Params(Params):
        steps: int = Field(200, ge=1)
        pause_s: float = Field(0.0, ge=0, description="sleep after started.txt (tests)")

    def run(self, ctx: RunContext, data: torch.Tensor, model: Any) -> dict[str, Any]:
        ctx.artifact("started.txt").write_text(str(os.getpid()))
        time.sleep(self.params.pause_s)
        dim = data.shape[0]
        w = torch.randn(dim, dim, generator=ctx.generator, dtype=torch.float64) / dim ** 0.5
        x, trace = data.clone(), []
        for _ in range(self.params.steps):
            x = torch.tanh(w @ x + 0.1)
            trace.append(float(x.abs().mean()))
        np.savez(ctx.artifact("state.npz"), x=x.numpy(), trace=np.asarray(trace))
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot(trace)
        fig.savefig(ctx.artifact("trace.png"), dpi=60)
        plt.close(fig)
        examples = [{"step": i, "mean_abs": v} for i, v in enumerate(trace) if i % 10 == 0]
        return {"final": float(x.sum()), "examples": examples}


class Final(Metric):
    """The final state's sum."""

    name = "spin/final"

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        return {"final": result.outputs["final"]}


@harness.hookimpl
def harness_adapters() -> list[type[harness.Adapter]]:
    return [Vector, Burn, Final]
