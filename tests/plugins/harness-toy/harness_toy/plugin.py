"""A complete third-party plugin: a dataset, a method and a metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

import harness
from harness import CellResult, Dataset, Method, Metric, Params, RunContext


class Coin(Dataset):
    """Coin flips with a given bias, drawn from the run context."""

    name = "toy/coin"
    version = "2"

    class Params(Params):
        n: int = Field(100, ge=1)
        bias: float = Field(0.5, ge=0, le=1)

    def load(self, ctx: RunContext) -> list[int]:
        return [int(x) for x in (ctx.rng.random(self.params.n) < self.params.bias)]


class CoinFile(Dataset):
    """Coin flips read from a text file (one 0 or 1 per line)."""

    name = "toy/coin-file"
    fingerprint_cacheable = False  # reads a file

    class Params(Params):
        path: str
        name_inputs: bool = Field(True, description="name the file in inputs() (False: "
                                  "the plan loads the file to fingerprint it every time)")

    def inputs(self, cache_dir: Path) -> list[Path] | None:
        return [Path(self.params.path)] if self.params.name_inputs else None

    def load(self, ctx: RunContext) -> list[int]:
        return [int(line) for line in Path(self.params.path).read_text().split()]


class Count(Method):
    """Count heads."""

    name = "toy/count"

    def run(self, ctx: RunContext, data: list[int], model: Any) -> dict[str, Any]:
        return {"heads": sum(data), "n": len(data)}


class HeadRate(Metric):
    """Fraction of heads."""

    name = "toy/head-rate"

    def compute(self, ctx: RunContext, result: CellResult) -> dict[str, float]:
        return {"head_rate": result.outputs["heads"] / result.outputs["n"]}


@harness.hookimpl
def harness_adapters() -> list[type[harness.Adapter]]:
    return [Coin, CoinFile, Count, HeadRate]
